"""Appeals as Beam transforms: parsed, applied once, joined to their decisions
(`enforcement.appeals` holds what an outcome means); an appeal for a decision the warehouse
does not hold is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from enforcement.appeals import Appeal, AppealOutcome, InvalidAppeal, appeal_from_record, consequences
from schemas.records import DeadLetter
from transforms.dead_letter import dead_letter_from_failure
from transforms.distinct import KeepOnePerKey
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
            error = (
                LookupError,
                f"LookupError('{decision_id}')",
                [f"LookupError: no decision {decision_id} in the warehouse"],
            )
            yield beam.pvalue.TaggedOutput(
                "unknown", dead_letter_from_failure((appeal, error), "apply_appeals", reason="unknown_decision")
            )
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


class SkipRecordedAppeals(beam.PTransform):
    """{"appeals": Appeal, "recorded": `appeals` table rows} -> (appeals to apply, skipped rows).

    An appeal (decision, outcome, time) is applied once: re-sending an appeals file, or a
    row twice in one file, never double-counts an appeal in the transparency cells.
    """

    def expand(self, inputs):
        recorded = inputs["recorded"] | "RecordedIds" >> beam.Map(_recorded_id)
        kept, repeats = inputs["appeals"] | "KeepNew" >> KeepOnePerKey(_appeal_id, Appeal.to_json, recorded)
        return kept, repeats | "SkipRepeats" >> beam.Map(_repeated_appeal)


def _by_decision(item) -> tuple[str, Any]:
    return item.decision_id, item


class JoinAppeals(beam.PTransform):
    """{"appeals": Appeal, "decisions": Decision} -> (AppealOutcome per appeal, dead letters).

    An appeal of a decision the input does not hold is dead-lettered (step `apply_appeals`,
    reason `unknown_decision`), never dropped.
    """

    def expand(self, inputs):
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

    def expand(self, inputs):
        outcomes, unknown = inputs | "JoinAppeals" >> JoinAppeals()
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
