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

from enforcement.events import enforcement_events
from enforcement.ids import stable_id
from schemas.records import Decision, EnforcementEvent, not_in_future, parse_timestamp
from schemas.version import PIPELINE_VERSION

OUTCOMES = ("upheld", "overturned")


class InvalidAppeal(ValueError):
    """An appeal row that does not meet the contract; the message names the field."""

    reason = "invalid_appeal"


@dataclasses.dataclass(frozen=True)
class Appeal:
    decision_id: str
    outcome: str
    decided_at: dt.datetime
    submitted_at: dt.datetime | None = None  # when the complaint was lodged, if the input says

    @property
    def appeal_id(self) -> str:
        return stable_id(self.decision_id, "appeal", self.outcome, self.decided_at.isoformat())

    def to_json(self) -> str:
        record = {"decision_id": self.decision_id, "outcome": self.outcome, "decided_at": self.decided_at.isoformat()}
        if self.submitted_at is not None:
            record["submitted_at"] = self.submitted_at.isoformat()
        return json.dumps(record)


def appeal_from_record(record: Any) -> Appeal:
    """Validates one appeal: `decision_id`, `outcome` (upheld or overturned), `decided_at` (the
    outcome), optional `submitted_at` (when the complaint was lodged; not after the outcome).

    Raises:
        InvalidAppeal: names the field and what was expected.
    """
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
        submitted = record.get("submitted_at")
        submitted_at = parse_timestamp(submitted, "submitted_at") if submitted not in (None, "") else None
    except ValueError as exc:
        raise InvalidAppeal(str(exc)) from None
    decided_at = not_in_future(decided_at, "decided_at")  # FutureTimestamp: its own dead-letter reason
    if submitted_at is not None and submitted_at > decided_at:
        raise InvalidAppeal(f"submitted_at: {submitted} is after the outcome's decided_at")
    return Appeal(decision_id.strip(), outcome, decided_at, submitted_at)


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
            "submitted_at": self.appeal.submitted_at,
            "policy_version": decision.policy_version,
            "pipeline_version": PIPELINE_VERSION,
        }


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


@dataclasses.dataclass(frozen=True)
class Consequences:
    """What an overturned appeal undoes: its events, its strike, and the item's label."""

    reversals: list[EnforcementEvent]
    strike_reversal: tuple[str, tuple[str, dt.datetime]]  # (account_id, (decision_id, reversed_at))
    label: RetrainingLabel


def consequences(outcome: AppealOutcome) -> Consequences | None:
    """None for an upheld appeal; for an overturned one, a `reverse` event per target the
    decision reached, its strike taken back, and the item labelled real for retraining."""
    if not outcome.overturned:
        return None
    decision, at = outcome.decision, outcome.appeal.decided_at
    return Consequences(
        reversals=enforcement_events(decision, "reverse"),
        strike_reversal=(decision.account_id, (decision.decision_id, at)),
        label=RetrainingLabel(decision.content_id, decision.decision_id, "real", "appeal_overturned", at),
    )
