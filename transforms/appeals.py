"""Appeals: an upheld decision stands; an overturned one is reversed everywhere it acted.

An overturned decision produces one `reverse` event per target the decision reached (ids as
stable as the original events'), takes its strike back (the ledger keeps the row with
`reversed_at`), and marks the item as real for retraining. Appeals name decisions by id; an
appeal for a decision the warehouse does not hold is dead-lettered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from pipelines.version import PIPELINE_VERSION
from schemas.records import Decision, EnforcementEvent, parse_timestamp, utc_now
from transforms.dead_letter import dead_letter_from_failure
from transforms.parse import RawRow, skipped
from transforms.policy import stable_id

OUTCOMES = ("upheld", "overturned")


class InvalidAppeal(ValueError):
    """An appeal row that does not meet the contract; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Appeal:
    decision_id: str
    outcome: str
    decided_at: dt.datetime

    @property
    def appeal_id(self) -> str:
        return stable_id(self.decision_id, "appeal", self.outcome, self.decided_at.isoformat())

    def to_json(self) -> str:
        return json.dumps(
            {"decision_id": self.decision_id, "outcome": self.outcome, "decided_at": self.decided_at.isoformat()}
        )


def parse_appeal(row: RawRow) -> Appeal:
    """Validates one appeal row: `decision_id`, `outcome` (upheld or overturned), `decided_at`.

    Raises:
        InvalidAppeal: names the field and what was expected.
    """
    try:
        record = row.value()
    except ValueError as exc:
        raise InvalidAppeal(str(exc)) from None
    if not isinstance(record, Mapping):
        raise InvalidAppeal("expected a JSON object")
    decision_id = record.get("decision_id")
    if not isinstance(decision_id, str) or not decision_id.strip():
        raise InvalidAppeal("decision_id: required")
    outcome = record.get("outcome")
    if outcome not in OUTCOMES:
        raise InvalidAppeal(f"outcome: expected one of {OUTCOMES}, got {outcome!r}")
    try:
        decided_at = parse_timestamp(record.get("decided_at"), "decided_at")
    except ValueError as exc:
        raise InvalidAppeal(str(exc)) from None
    return Appeal(decision_id.strip(), outcome, decided_at)


def decision_from_row(row: Mapping[str, Any]) -> Decision:
    """A decision as the `enforcement_decisions` table holds it."""
    names = {f.name for f in dataclasses.fields(Decision)}
    values = {k: v for k, v in row.items() if k in names}
    values["targets"] = tuple(values.get("targets") or ())
    for field in ("uploaded_at", "decided_at"):
        values[field] = parse_timestamp(values[field], field)
    if values.get("notified_at") is not None:
        values["notified_at"] = parse_timestamp(values["notified_at"], "notified_at")
    return Decision(**values)


@dataclasses.dataclass(frozen=True)
class AppealOutcome:
    """An appeal joined to its decision: one row of the `appeals` table."""

    appeal: Appeal
    decision: Decision

    @property
    def overturned(self) -> bool:
        return self.appeal.outcome == "overturned"

    def to_row(self) -> dict[str, Any]:
        decision = self.decision
        return {
            "appeal_id": self.appeal.appeal_id,
            "decision_id": decision.decision_id,
            "content_id": decision.content_id,
            "account_id": decision.account_id,
            "outcome": self.appeal.outcome,
            "action": decision.action,
            "category": decision.category,
            "automated_decision": decision.automated_decision,
            "decided_at": decision.decided_at,
            "appeal_decided_at": self.appeal.decided_at,
            "policy_version": decision.policy_version,
            "pipeline_version": PIPELINE_VERSION,
        }


def reversal_events(outcome: AppealOutcome) -> list[EnforcementEvent]:
    """One `reverse` event per target the overturned decision reached."""
    decision = outcome.decision
    emitted_at = utc_now()
    events = []
    for target in decision.targets:
        payload = {"decision_id": decision.decision_id, "content_id": decision.content_id,
                   "undo": decision.action, "reason": "appeal overturned"}  # fmt: skip
        events.append(
            EnforcementEvent(
                event_id=stable_id(decision.decision_id, target, "reverse"),
                decision_id=decision.decision_id,
                content_id=decision.content_id,
                account_id=decision.account_id,
                target=target,
                action=decision.action,
                event_type="reverse",
                policy_id=decision.policy_id,
                policy_version=decision.policy_version,
                emitted_at=emitted_at,
                payload=json.dumps(payload, sort_keys=True),
            )
        )
    return events


@dataclasses.dataclass(frozen=True)
class RetrainingLabel:
    """A human verdict that corrects the model: the item was real."""

    content_id: str
    decision_id: str
    label: str
    source: str
    labelled_at: dt.datetime

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"pipeline_version": PIPELINE_VERSION}


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
            yield beam.pvalue.TaggedOutput("unknown", dead_letter_from_failure((appeal, error), "apply_appeals"))
            continue
        yield AppealOutcome(appeal, decisions[0])


def _outcome_outputs(outcome: AppealOutcome):
    if not outcome.overturned:
        return
    for event in reversal_events(outcome):
        yield beam.pvalue.TaggedOutput("reversals", event)
    decision = outcome.decision
    yield beam.pvalue.TaggedOutput(
        "strike_reversals", (decision.account_id, (decision.decision_id, outcome.appeal.decided_at))
    )
    yield beam.pvalue.TaggedOutput(
        "labels",
        RetrainingLabel(
            decision.content_id, decision.decision_id, "real", "appeal_overturned", outcome.appeal.decided_at
        ),
    )


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
