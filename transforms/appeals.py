"""Appeals as Beam transforms: parsed, applied once, joined to their decisions
(`enforcement.appeals` holds what an outcome means); an appeal for a decision the warehouse
does not hold is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam
from apache_beam.transforms import userstate

from enforcement.appeals import Appeal, AppealOutcome, InvalidAppeal, appeal_from_record, consequences
from schemas.records import DeadLetter
from transforms.dead_letter import dead_letter_from_failure
from transforms.distinct import KeepFirstInState, KeepOnePerKey
from transforms.parse import RawRow, skipped


def parse_record(row: RawRow, from_record, error: type[ValueError]):
    """One input row (a file's line or a message) validated by `from_record`; a row that is
    not JSON raises `error` too, so every bad row is dead-lettered with the input's reason."""
    try:
        record = row.value()
    except ValueError as exc:
        raise error(str(exc)) from None
    return from_record(record)


def parse_appeal(row: RawRow) -> Appeal:
    """Validates one appeal row (see `enforcement.appeals.appeal_from_record`).

    Raises:
        InvalidAppeal: names the field and what was expected.
    """
    return parse_record(row, appeal_from_record, InvalidAppeal)


def _join(keyed, make, step: str, what: str, prefer=None):
    key, grouped = keyed
    decisions = list(grouped["decisions"])
    for item in grouped["items"]:
        if not decisions:
            yield beam.pvalue.TaggedOutput("unknown", _unknown(item, key, step, what))
            continue
        yield make(item, prefer(decisions) if prefer is not None else decisions[0])


def _outcome_outputs(outcome: AppealOutcome):
    undone = consequences(outcome)
    if undone is None:
        return
    for event in undone.reversals:
        yield beam.pvalue.TaggedOutput("reversals", event)
    yield beam.pvalue.TaggedOutput("strike_reversals", undone.strike_reversal)
    yield beam.pvalue.TaggedOutput("labels", undone.label)


# Streaming: how long (event time) an appeal id is remembered to skip its re-sends, and how
# long an appeal waits for its decision to reach the job before it is dead-lettered.
APPEAL_HORIZON_S = 180 * 86400
APPEAL_WAIT_S = 3600


def _recorded_id(row: Mapping[str, Any], field: str) -> str:
    return str(row[field])


def _repeated(repeat, what: str, step: str) -> DeadLetter:
    item_id, item, recorded = repeat
    where = "is already in the warehouse" if recorded else "appears more than once in this input"
    return skipped(item, step, f"duplicate_{what}", f"{what} {item_id} {where}; applied once")


class SkipRecorded(beam.PTransform):
    """{"items": X, "recorded": table rows} -> (items to apply, skipped rows): an item whose id
    (`id_of`) is in the table's `id_field` already, or repeats in this input, is applied once.

    Re-sending a file, or a row twice in one file, never double-counts (skipped at `step` with
    reason `duplicate_<what>`). Streaming (`streaming=True`) keeps the first to arrive, in
    keyed state, for `APPEAL_HORIZON_S` of event time.
    """

    def __init__(self, id_of, to_json, id_field: str, what: str, step: str, streaming: bool = False):
        super().__init__()
        self._id_of, self._to_json, self._id_field = id_of, to_json, id_field
        self._what, self._step, self._streaming = what, step, streaming

    def expand(self, inputs):
        recorded = inputs["recorded"] | "RecordedIds" >> beam.Map(_recorded_id, self._id_field)
        if self._streaming:
            keep = KeepFirstInState(self._id_of, APPEAL_HORIZON_S, recorded)
        else:
            keep = KeepOnePerKey(self._id_of, self._to_json, recorded)
        kept, repeats = inputs["items"] | "KeepNew" >> keep
        return kept, repeats | "SkipRepeats" >> beam.Map(_repeated, self._what, self._step)


def _appeal_id(appeal: Appeal) -> str:
    return appeal.appeal_id


class SkipRecordedAppeals(beam.PTransform):
    """{"appeals": Appeal, "recorded": `appeals` table rows} -> (appeals to apply, skipped rows).

    An appeal (decision, outcome, time) is applied once: re-sending an appeals file, or a
    row twice in one file, never double-counts an appeal in the transparency cells.
    """

    def __init__(self, streaming: bool = False):
        super().__init__()
        self._streaming = streaming

    def expand(self, inputs):
        return {"items": inputs["appeals"], "recorded": inputs["recorded"]} | "Skip" >> SkipRecorded(
            _appeal_id, Appeal.to_json, "appeal_id", "appeal", "dedupe_appeals", self._streaming
        )


def _keyed(item, key: str) -> tuple[str, Any]:
    return getattr(item, key), item


def _unknown(item, key: str, step: str, what: str = "decision"):
    error = (LookupError, f"LookupError('{key}')", [f"LookupError: no {what} {key} in the warehouse"])
    return dead_letter_from_failure((item, error), step, reason=f"unknown_{what}")


class _JoinInState(beam.DoFn):
    """Streaming form of the join to decisions: each decision is held in keyed state (decision
    id); an item (an appeal, a verdict) finds it there, or waits `APPEAL_WAIT_S` of event time
    for it and is then dead-lettered `unknown_<what>`, as the batch join does at once."""

    DECISION = userstate.ReadModifyWriteStateSpec("decision", beam.coders.PickleCoder())
    PENDING = userstate.BagStateSpec("pending", beam.coders.PickleCoder())
    GIVE_UP = userstate.TimerSpec("give_up", beam.TimeDomain.WATERMARK)

    def __init__(self, make, step: str, what: str, prefer=None):
        self._make, self._step, self._what, self._prefer = make, step, what, prefer

    def process(self, keyed, timestamp=beam.DoFn.TimestampParam, decision=beam.DoFn.StateParam(DECISION),
                pending=beam.DoFn.StateParam(PENDING), give_up=beam.DoFn.TimerParam(GIVE_UP)):  # fmt: skip
        _, (kind, item) = keyed
        if kind == "decision":
            held = decision.read()
            if held is not None and self._prefer is not None:
                item = self._prefer([held, item])
            decision.write(item)
            for waiting in pending.read():
                yield self._make(waiting, item)
            pending.clear()
            give_up.clear()
            return
        held = decision.read()
        if held is not None:
            yield self._make(item, held)
            return
        pending.add(item)
        give_up.set(timestamp + APPEAL_WAIT_S)

    @userstate.on_timer(GIVE_UP)
    def unknown(self, key=beam.DoFn.KeyParam, pending=beam.DoFn.StateParam(PENDING)):
        for item in pending.read():
            yield beam.pvalue.TaggedOutput("unknown", _unknown(item, key, self._step, self._what))
        pending.clear()


def _tagged(item, kind: str, key: str):
    return getattr(item, key), (kind, item)


class JoinToDecision(beam.PTransform):
    """{"items": anything with a `decision_id`, "decisions": Decision} -> (`make(item,
    decision)` per item, dead letters).

    An item naming a decision the input does not hold is dead-lettered (at `step`, reason
    `unknown_decision`), never dropped. Streaming (`streaming=True`) joins in keyed state.
    `key` and `what` join on another id the same way (`campaign_id`: items to campaigns);
    `prefer` picks among several held under one key (default: the first, or the newest in
    streaming).
    """

    def __init__(self, make, step: str, streaming: bool = False, key: str = "decision_id", what: str = "decision",
                 prefer=None):  # fmt: skip
        super().__init__()
        self._make, self._step, self._streaming = make, step, streaming
        self._key, self._what, self._prefer = key, what, prefer

    def expand(self, inputs):
        if self._streaming:
            joined = (
                (
                    inputs["items"] | "TagItems" >> beam.Map(_tagged, "item", self._key),
                    inputs["decisions"] | "TagDecisions" >> beam.Map(_tagged, "decision", self._key),
                )
                | "Merge" >> beam.Flatten()
                | "JoinInState"
                >> beam.ParDo(_JoinInState(self._make, self._step, self._what, self._prefer)).with_outputs(
                    "unknown", main="joined"
                )
            )
            return joined.joined, joined.unknown
        joined = (
            {
                "items": inputs["items"] | "KeyItems" >> beam.Map(_keyed, self._key),
                "decisions": inputs["decisions"] | "KeyDecisions" >> beam.Map(_keyed, self._key),
            }
            | "ByDecision" >> beam.CoGroupByKey()
            | "Join"
            >> beam.FlatMap(_join, self._make, self._step, self._what, self._prefer).with_outputs(
                "unknown", main="joined"
            )
        )
        return joined.joined, joined.unknown


class JoinAppeals(beam.PTransform):
    """{"appeals": Appeal, "decisions": Decision} -> (AppealOutcome per appeal, dead letters at
    step `apply_appeals`)."""

    def __init__(self, streaming: bool = False):
        super().__init__()
        self._streaming = streaming

    def expand(self, inputs):
        return {"items": inputs["appeals"], "decisions": inputs["decisions"]} | "Join" >> JoinToDecision(
            AppealOutcome, "apply_appeals", self._streaming
        )


class ApplyAppeals(beam.PTransform):
    """{"appeals": Appeal, "decisions": Decision} -> outcomes, reversal events, strike reversals,
    retraining labels and dead letters (appeals for unknown decisions), as a dict."""

    def __init__(self, streaming: bool = False):
        super().__init__()
        self._streaming = streaming

    def expand(self, inputs):
        outcomes, unknown = inputs | "JoinAppeals" >> JoinAppeals(self._streaming)
        split = outcomes | "Consequences" >> beam.FlatMap(_outcome_outputs).with_outputs(
            "reversals", "strike_reversals", "labels"
        )
        return {
            "outcomes": outcomes,
            "reversals": split.reversals,
            "strike_reversals": split.strike_reversals,
            "labels": split.labels,
            "dead_letters": unknown,
        }
