"""Enforcement events: one per downstream system a decision reaches, ids stable across reruns.

Every event the pipeline emits is built here: `enforce` carries out a content decision,
`reverse` undoes one an appeal overturned or a reviewer disagreed with; a suspension is a decision like the others, whose
one target is the account enforcement system. An event id is a hash of the decision, the target and the event type, so a rerun emits the same ids and
consumers de-duplicate on them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from enforcement.ids import stable_id
from schemas.records import Decision, EnforcementEvent, utc_now

EVENT_TYPES = ("enforce", "reverse")


def _payload(decision: Decision, event_type: str, reason: str) -> dict[str, Any]:
    if event_type == "reverse":
        return {"decision_id": decision.decision_id, "content_id": decision.content_id,
                "undo": decision.action, "reason": reason}  # fmt: skip
    return {
        "decision_id": decision.decision_id,
        "content_id": decision.content_id,
        "account_id": decision.account_id,
        "action": decision.action,
        "category": decision.category,
        "policy": f"{decision.policy_id}@{decision.policy_version}",
        "rule_id": decision.rule_id,
    }


def enforcement_events(
    decision: Decision,
    event_type: str = "enforce",
    emitted_at: dt.datetime | None = None,
    reason: str = "appeal overturned",
) -> list[EnforcementEvent]:
    """One event per downstream target of the decision: `enforce` it, or `reverse` it (for
    `reason`: an overturned appeal, a reviewer's verdict)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type: expected one of {EVENT_TYPES}, got {event_type!r}")
    emitted_at = emitted_at or utc_now()
    payload = json.dumps(_payload(decision, event_type, reason), sort_keys=True)
    return [
        EnforcementEvent(
            event_id=stable_id(decision.decision_id, target, event_type),
            decision_id=decision.decision_id,
            content_id=decision.content_id,
            account_id=decision.account_id,
            target=target,
            action=decision.action,
            event_type=event_type,
            policy_id=decision.policy_id,
            policy_version=decision.policy_version,
            emitted_at=emitted_at,
            payload=payload,
        )
        for target in decision.targets
    ]
