"""Appeals as Beam transforms: parsed, applied once, joined to their decisions
(`enforcement.appeals` holds what an outcome means); an appeal for a decision the warehouse
does not hold is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from enforcement.appeals import Appeal, AppealOutcome, InvalidAppeal, appeal_from_record, consequences
from transforms.dead_letter import dead_letter_from_failure
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


def _by_appeal_id(appeal: Appeal) -> tuple[str, Appeal]:
    return appeal.appeal_id, appeal


def _recorded_id(row: Mapping[str, Any]) -> tuple[str, None]:
    return row["appeal_id"], None


def _keep_new_appeals(keyed):
    appeal_id, grouped = keyed
    recorded = bool(list(grouped["recorded"]))
    for index, appeal in enumerate(sorted(grouped["appeals"], key=Appeal.to_json)):
        if not recorded and index == 0:
            yield appeal
            continue
        where = "is already in the warehouse" if recorded else "appears more than once in this input"
        yield beam.pvalue.TaggedOutput(
            "skipped",
            skipped(appeal, "dedupe_appeals", "duplicate_appeal", f"appeal {appeal_id} {where}; applied once"),
        )


class SkipRecordedAppeals(beam.PTransform):
    """{"appeals": Appeal, "recorded": `appeals` table rows} -> (appeals to apply, skipped rows).

    An appeal (decision, outcome, time) is applied once: re-sending an appeals file, or a
    row twice in one file, never double-counts an appeal in the transparency cells.
    """

    def expand(self, inputs):
        outputs = (
            {
                "appeals": inputs["appeals"] | "KeyAppealsById" >> beam.Map(_by_appeal_id),
                "recorded": inputs["recorded"] | "KeyRecordedIds" >> beam.Map(_recorded_id),
            }
            | "GroupByAppealId" >> beam.CoGroupByKey()
            | "KeepNew" >> beam.FlatMap(_keep_new_appeals).with_outputs("skipped", main="appeals")
        )
        return outputs.appeals, outputs.skipped


def _by_decision(item) -> tuple[str, Any]:
    return item.decision_id, item


class ApplyAppeals(beam.PTransform):
    """{"appeals": Appeal, "decisions": Decision} -> outcomes, reversal events, strike reversals,
    retraining labels and dead letters (appeals for unknown decisions), as a dict."""

    def expand(self, inputs):
        joined = (
            {
                "appeals": inputs["appeals"] | "KeyAppeals" >> beam.Map(_by_decision),
                "decisions": inputs["decisions"] | "KeyDecisions" >> beam.Map(_by_decision),
            }
            | "ByDecision" >> beam.CoGroupByKey()
            | "Join" >> beam.FlatMap(_join).with_outputs("unknown", main="outcomes")
        )
        split = joined.outcomes | "Consequences" >> beam.FlatMap(_outcome_outputs).with_outputs(
            "reversals", "strike_reversals", "labels"
        )
        return {
            "outcomes": joined.outcomes,
            "reversals": split.reversals,
            "strike_reversals": split.strike_reversals,
            "labels": split.labels,
            "dead_letters": joined.unknown,
        }
