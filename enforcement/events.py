"""Enforcement events: one per downstream system a decision reaches, ids stable across reruns.

Every event the pipeline emits is built here: `enforce` carries out a content decision,
`reverse` undoes one an appeal overturned; a suspension is a decision like the others, whose
one target is the account enforcement system. An event id
is a hash of the decision, the target and the event type, so a rerun emits the same ids and
consumers de-duplicate on them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from enforcement.ids import stable_id
from schemas.records import Decision, EnforcementEvent, utc_now
from schemas.vocabulary import SUSPEND_ACTION

EVENT_TYPES = ("enforce", "reverse")


def _event(
    decision_id: str,
    target: str,
    event_type: str,
    *,
    content_id: str,
    account_id: str,
    action: str,
    policy: tuple[str, str],
    payload: dict[str, Any],
    emitted_at: dt.datetime,
) -> EnforcementEvent:
    return EnforcementEvent(
        event_id=stable_id(decision_id, target, event_type),
        decision_id=decision_id,
        content_id=content_id,
        account_id=account_id,
        target=target,
        action=action,
        event_type=event_type,
        policy_id=policy[0],
        policy_version=policy[1],
        emitted_at=emitted_at,
        payload=json.dumps(payload, sort_keys=True),
    )


def _payload(decision: Decision, event_type: str) -> dict[str, Any]:
    if decision.action == SUSPEND_ACTION and event_type == "enforce":
        return {"decision_id": decision.decision_id, "account_id": decision.account_id, "action": SUSPEND_ACTION,
                "policy": f"{decision.policy_id}@{decision.policy_version}", "rule_id": decision.rule_id}  # fmt: skip
    if event_type == "reverse":
        return {"decision_id": decision.decision_id, "content_id": decision.content_id,
                "undo": decision.action, "reason": "appeal overturned"}  # fmt: skip
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
    decision: Decision, event_type: str = "enforce", emitted_at: dt.datetime | None = None
) -> list[EnforcementEvent]:
    """One event per downstream target of the decision: `enforce` it, or `reverse` it."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type: expected one of {EVENT_TYPES}, got {event_type!r}")
    context = {
        "content_id": decision.content_id,
        "account_id": decision.account_id,
        "action": decision.action,
        "policy": (decision.policy_id, decision.policy_version),
        "payload": _payload(decision, event_type),
        "emitted_at": emitted_at or utc_now(),
    }
    return [_event(decision.decision_id, target, event_type, **context) for target in decision.targets]
