"""One element per key: the one transform every de-duplication in the pipeline uses.

Upload events (one per content id), appeals (one per appeal id, never one already applied in
an earlier run) and warehouse rows re-emitted by reruns (one per id) all keep the first
element of each key in a stated order, so the choice is deterministic whatever order the
runner delivers them in; the repeats come back on their own, for the caller to record with a
reason or to count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.transforms import userstate

KEPT, REPEATED = "kept", "repeated"


class _KeepFirst(beam.DoFn):
    def __init__(self, order: Callable[[Any], Any], choose: Callable[[list], Any] | None):
        self._order, self._choose = order, choose

    def process(self, keyed):
        key, grouped = keyed
        elements = sorted(grouped["elements"], key=self._order)
        if self._choose is not None and elements:
            kept = self._choose(elements)
            elements = [kept, *(e for e in elements if e is not kept)]
        recorded = bool(list(grouped.get("recorded", ())))
        for index, element in enumerate(elements):
            if index == 0 and not recorded:
                yield element
            else:
                yield beam.pvalue.TaggedOutput(REPEATED, (key, element, recorded))


class KeepOnePerKey(beam.PTransform):
    """Elements -> (the first element of each key by `order`, repeats).

    With `choose`, the kept element is `choose(elements of the key, in order)` instead of the
    first. A repeat is `(key, element, recorded)`: `recorded` is True when the key is in `recorded` (a
    PCollection of keys applied before, e.g. by an earlier run), in which case no element of
    that key is kept.
    """

    def __init__(
        self,
        key: Callable[[Any], str],
        order: Callable[[Any], Any],
        recorded: beam.PCollection | None = None,
        choose: Callable[[list], Any] | None = None,
    ):
        super().__init__()
        self._key, self._order, self._recorded, self._choose = key, order, recorded, choose

    def expand(self, elements):
        inputs = {"elements": elements | "Key" >> beam.Map(lambda e, key: (key(e), e), key=self._key)}
        if self._recorded is not None:
            inputs["recorded"] = self._recorded | "KeyRecorded" >> beam.Map(lambda k: (k, None))
        outputs = (
            inputs
            | "GroupByKey" >> beam.CoGroupByKey()
            | "KeepFirst" >> beam.ParDo(_KeepFirst(self._order, self._choose)).with_outputs(REPEATED, main=KEPT)
        )
        return outputs[KEPT], outputs[REPEATED]


class _FirstInState(beam.DoFn):
    """Streaming: the first element of a key to arrive wins, remembered in keyed state until an
    event-time timer `horizon_s` after it (keys recorded before the job started are remembered
    for good); a later element of the key is a repeat."""

    SEEN = userstate.ReadModifyWriteStateSpec("seen", beam.coders.StrUtf8Coder())
    FORGET = userstate.TimerSpec("forget", beam.TimeDomain.WATERMARK)

    def __init__(self, horizon_s: float):
        self._horizon_s = horizon_s

    def process(self, keyed, timestamp=beam.DoFn.TimestampParam, seen=beam.DoFn.StateParam(SEEN),
                forget=beam.DoFn.TimerParam(FORGET)):  # fmt: skip
        key, (kind, element) = keyed
        if kind == "recorded":
            seen.write("recorded")
            return
        held = seen.read()
        if held:
            yield beam.pvalue.TaggedOutput(REPEATED, (key, element, held == "recorded"))
            return
        seen.write("seen")
        forget.set(timestamp + self._horizon_s)
        yield element

    @userstate.on_timer(FORGET)
    def on_forget(self, seen=beam.DoFn.StateParam(SEEN)):
        if seen.read() != "recorded":
            seen.clear()


def _tag(element, key: Callable[[Any], str], kind: str):
    return key(element), (kind, element)


class KeepFirstInState(beam.PTransform):
    """Streaming form of `KeepOnePerKey`: elements -> (the first of each key to arrive,
    repeats as `(key, element, recorded)`), with `recorded` keys (applied before the job)
    never kept. Keys are remembered `horizon_s` of event time after their first element."""

    def __init__(self, key: Callable[[Any], str], horizon_s: float, recorded: beam.PCollection | None = None):
        super().__init__()
        self._key, self._horizon_s, self._recorded = key, horizon_s, recorded

    def expand(self, elements):
        tagged = [elements | "Tag" >> beam.Map(_tag, key=self._key, kind="new")]
        if self._recorded is not None:
            tagged.append(self._recorded | "TagRecorded" >> beam.Map(_tag, key=str, kind="recorded"))
        outputs = (
            tagged
            | "Merge" >> beam.Flatten(pipeline=elements.pipeline)
            | "FirstInState" >> beam.ParDo(_FirstInState(self._horizon_s)).with_outputs(REPEATED, main=KEPT)
        )
        return outputs[KEPT], outputs[REPEATED]
