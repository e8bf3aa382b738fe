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


def parse_appeal(row: RawRow) -> Appeal:
    """Validates one appeal row (see `enforcement.appeals.appeal_from_record`).

    Raises:
        InvalidAppeal: names the field and what was expected.
    """
    try:
        record = row.value()
    except ValueError as exc:
        raise InvalidAppeal(str(exc)) from None
    return appeal_from_record(record)


def _join(keyed):
    decision_id, grouped = keyed
    decisions = grouped["decisions"]
    for appeal in grouped["appeals"]:
        if not decisions:
            yield beam.pvalue.TaggedOutput("unknown", _unknown_decision(appeal, decision_id))
            continue
        yield AppealOutcome(appeal, decisions[0])


def _outcome_outputs(outcome: AppealOutcome):
    undone = consequences(outcome)
    if undone is None:
        return
    for event in undone.reversals:
        yield beam.pvalue.TaggedOutput("reversals", event)
    yield beam.pvalue.TaggedOutput("strike_reversals", undone.strike_reversal)
    yield beam.pvalue.TaggedOutput("labels", undone.label)


def _appeal_id(appeal: Appeal) -> str:
    return appeal.appeal_id


def _recorded_id(row: Mapping[str, Any]) -> str:
    return str(row["appeal_id"])


def _repeated_appeal(repeat) -> DeadLetter:
    appeal_id, appeal, recorded = repeat
    where = "is already in the warehouse" if recorded else "appears more than once in this input"
    return skipped(appeal, "dedupe_appeals", "duplicate_appeal", f"appeal {appeal_id} {where}; applied once")


# Streaming: how long (event time) an appeal id is remembered to skip its re-sends, and how
# long an appeal waits for its decision to reach the job before it is dead-lettered.
APPEAL_HORIZON_S = 180 * 86400
APPEAL_WAIT_S = 3600


class SkipRecordedAppeals(beam.PTransform):
    """{"appeals": Appeal, "recorded": `appeals` table rows} -> (appeals to apply, skipped rows).

    An appeal (decision, outcome, time) is applied once: re-sending an appeals file, or a
    row twice in one file, never double-counts an appeal in the transparency cells. Streaming
    (`streaming=True`) keeps the first to arrive, in keyed state.
    """

    def __init__(self, streaming: bool = False):
        super().__init__()
        self._streaming = streaming

    def expand(self, inputs):
        recorded = inputs["recorded"] | "RecordedIds" >> beam.Map(_recorded_id)
        if self._streaming:
            keep = KeepFirstInState(_appeal_id, APPEAL_HORIZON_S, recorded)
        else:
            keep = KeepOnePerKey(_appeal_id, Appeal.to_json, recorded)
        kept, repeats = inputs["appeals"] | "KeepNew" >> keep
        return kept, repeats | "SkipRepeats" >> beam.Map(_repeated_appeal)


def _by_decision(item) -> tuple[str, Any]:
    return item.decision_id, item


def _unknown_decision(appeal: Appeal, decision_id: str):
    error = (LookupError, f"LookupError('{decision_id}')", [f"LookupError: no decision {decision_id} in the warehouse"])
    return dead_letter_from_failure((appeal, error), "apply_appeals", reason="unknown_decision")


class _AppealJoinInState(beam.DoFn):
    """Streaming form of the appeals join: each decision is held in keyed state (decision id);
    an appeal finds it there, or waits `APPEAL_WAIT_S` of event time for it and is then
    dead-lettered `unknown_decision`, as the batch join does at once."""

    DECISION = userstate.ReadModifyWriteStateSpec("decision", beam.coders.PickleCoder())
    PENDING = userstate.BagStateSpec("pending", beam.coders.PickleCoder())
    GIVE_UP = userstate.TimerSpec("give_up", beam.TimeDomain.WATERMARK)

    def process(self, keyed, timestamp=beam.DoFn.TimestampParam, decision=beam.DoFn.StateParam(DECISION),
                pending=beam.DoFn.StateParam(PENDING), give_up=beam.DoFn.TimerParam(GIVE_UP)):  # fmt: skip
        _, (kind, item) = keyed
        if kind == "decision":
            decision.write(item)
            for appeal in pending.read():
                yield AppealOutcome(appeal, item)
            pending.clear()
            give_up.clear()
            return
        held = decision.read()
        if held is not None:
            yield AppealOutcome(item, held)
            return
        pending.add(item)
        give_up.set(timestamp + APPEAL_WAIT_S)

    @userstate.on_timer(GIVE_UP)
    def unknown(self, key=beam.DoFn.KeyParam, pending=beam.DoFn.StateParam(PENDING)):
        for appeal in pending.read():
            yield beam.pvalue.TaggedOutput("unknown", _unknown_decision(appeal, key))
        pending.clear()


def _tagged(item, kind: str):
    return item.decision_id, (kind, item)


class JoinAppeals(beam.PTransform):
    """{"appeals": Appeal, "decisions": Decision} -> (AppealOutcome per appeal, dead letters).

    An appeal of a decision the input does not hold is dead-lettered (step `apply_appeals`,
    reason `unknown_decision`), never dropped.
    """

    def __init__(self, streaming: bool = False):
        super().__init__()
        self._streaming = streaming

    def expand(self, inputs):
        if self._streaming:
            joined = (
                (
                    inputs["appeals"] | "TagAppeals" >> beam.Map(_tagged, "appeal"),
                    inputs["decisions"] | "TagDecisions" >> beam.Map(_tagged, "decision"),
                )
                | "Merge" >> beam.Flatten()
                | "JoinInState" >> beam.ParDo(_AppealJoinInState()).with_outputs("unknown", main="outcomes")
            )
            return joined.outcomes, joined.unknown
        joined = (
            {
                "appeals": inputs["appeals"] | "KeyAppeals" >> beam.Map(_by_decision),
                "decisions": inputs["decisions"] | "KeyDecisions" >> beam.Map(_by_decision),
            }
            | "ByDecision" >> beam.CoGroupByKey()
            | "Join" >> beam.FlatMap(_join).with_outputs("unknown", main="outcomes")
        )
        return joined.outcomes, joined.unknown


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
