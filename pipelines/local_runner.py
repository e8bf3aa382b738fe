"""Beam's local runners, made to do less work that changes nothing.

Both local runners (the batch job's FnApiRunner, the streaming job's DirectRunner) ask again
and again whether a step's DoFn keeps state or timers (`userstate.get_dofn_specs`): at every
ParDo built, every bundle processed and, on the DirectRunner, every bundle scheduled. Beam
answers by reading the signature of every bound method the DoFn has, which was a third of a
local streaming job's CPU and a sixth of a small batch job's (BENCHMARKS.md, "The local
runners"). `remember_stateful_dofns` makes that a memo; it is installed for the local runners
only (`pipelines.launch.prepare`): a Dataflow job builds its graph once and its workers are
Dataflow's.
"""

from __future__ import annotations

import types

_installed = False


def remember_stateful_dofns() -> None:
    """Puts `ask_once` in front of Beam's `get_dofn_specs` (idempotent)."""
    global _installed
    if _installed:
        return
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    userstate.get_dofn_specs = transform_evaluator.get_dofn_specs = ask_once(userstate.get_dofn_specs)
    _installed = True


def ask_once(get_dofn_specs):
    """`get_dofn_specs` asked once per DoFn class: the bound methods it reads are the class's.
    A DoFn that holds a bound method of its own, or whose bound method takes its arguments from
    elsewhere (an `_inspect_<method>`), is asked every time, as Beam does. (`Map`, `FlatMap`
    and `Filter` hold their function as a plain function, which Beam's answer does not read.)"""
    answers: dict[type, tuple] = {}
    inspected: dict[type, tuple[str, ...]] = {}

    def answered_by_class(dofn) -> bool:
        kind = type(dofn)
        if kind not in inspected:
            inspected[kind] = tuple(n.removeprefix("_inspect_") for n in dir(kind) if n.startswith("_inspect_"))
        return not any(isinstance(v, types.MethodType) for v in getattr(dofn, "__dict__", {}).values()) and not any(
            isinstance(getattr(dofn, name, None), types.MethodType) for name in inspected[kind]
        )

    def ask(dofn):
        if not answered_by_class(dofn):
            return get_dofn_specs(dofn)
        kind = type(dofn)
        if kind not in answers:
            answers[kind] = get_dofn_specs(dofn)
        return answers[kind]

    return ask
