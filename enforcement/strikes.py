"""Account strikes: weighted per action, expiring after a window, suspension at a threshold.

The ledger is append-only: every strike ever issued is a row, and a reversed strike (an
appeal that overturned its decision) stays with `reversed_at` set, so the history can be
audited and replayed. An account's standing is computed from the ledger, never stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from enforcement.ids import stable_id
from enforcement.policy import Policy, StrikePolicy
from schemas.records import Decision, parse_timestamp
from schemas.version import PIPELINE_VERSION
from schemas.vocabulary import SUSPEND_ACTION, SUSPENSION_TARGET


@dataclasses.dataclass(frozen=True)
class Strike:
    """One strike against an account, from one decision."""

    strike_id: str
    account_id: str
    decision_id: str
    action: str
    weight: float
    issued_at: dt.datetime
    expires_at: dt.datetime
    reversed_at: dt.datetime | None = None

    def active(self, now: dt.datetime) -> bool:
        return self.reversed_at is None and self.issued_at <= now < self.expires_at

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["pipeline_version"] = PIPELINE_VERSION
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Strike:
        def when(field: str) -> dt.datetime | None:
            value = row.get(field)
            return None if value is None else parse_timestamp(value, field)

        return cls(
            strike_id=str(row["strike_id"]),
            account_id=str(row["account_id"]),
            decision_id=str(row["decision_id"]),
            action=str(row["action"]),
            weight=float(row["weight"]),
            issued_at=when("issued_at"),
            expires_at=when("expires_at"),
            reversed_at=when("reversed_at"),
        )


def strike_for(decision: Decision, policy: StrikePolicy) -> Strike | None:
    """The strike a decision earns, or None (no weight for its action, or decided by people later)."""
    weight = policy.weights.get(decision.action, 0.0)
    if weight <= 0:
        return None
    return Strike(
        strike_id=stable_id(decision.decision_id, "strike"),
        account_id=decision.account_id,
        decision_id=decision.decision_id,
        action=decision.action,
        weight=weight,
        issued_at=decision.decided_at,
        expires_at=decision.decided_at + dt.timedelta(days=policy.window_days),
    )


@dataclasses.dataclass(frozen=True)
class Standing:
    account_id: str
    active_points: float
    suspended: bool
    as_of: dt.datetime


def standing(account_id: str, strikes: Iterable[Strike], now: dt.datetime, policy: StrikePolicy) -> Standing:
    """Active strike points at `now` (expired and reversed strikes do not count)."""
    points = sum(s.weight for s in strikes if s.active(now))
    return Standing(account_id, points, points >= policy.suspend_at, now)


def reverse(strikes: Iterable[Strike], decision_id: str, at: dt.datetime) -> list[Strike]:
    """The ledger with the strike of an overturned decision marked reversed (kept, not deleted)."""
    return [
        dataclasses.replace(s, reversed_at=at) if s.decision_id == decision_id and s.reversed_at is None else s
        for s in strikes
    ]


def merge_ledger(prior: Iterable[Strike], new: Iterable[Strike]) -> list[Strike]:
    """Prior ledger plus new strikes; a rerun's strike (same id) replaces nothing and adds nothing.
    A prior ledger may hold a strike more than once (the streaming job writes an account's
    ledger at each change): its reversed copy stands, since a strike only ever gets reversed."""
    merged: dict[str, Strike] = {}
    for strike in prior:
        held = merged.get(strike.strike_id)
        if held is None or (held.reversed_at is None and strike.reversed_at is not None):
            merged[strike.strike_id] = strike
    for strike in new:
        merged.setdefault(strike.strike_id, strike)
    return sorted(merged.values(), key=lambda s: (s.issued_at, s.strike_id))


@dataclasses.dataclass(frozen=True)
class Suspension:
    """An account whose active strikes crossed the threshold, and the decision that took it
    over (the first, in event time, at which the points reached `suspend_at`)."""

    standing: Standing
    crossing: Decision


def update_account(
    account_id: str,
    prior: Iterable[Strike],
    new: Iterable[tuple[Strike, Decision]],
    reversals: Iterable[tuple[str, dt.datetime]],
    policy: StrikePolicy,
) -> tuple[list[Strike], Suspension | None]:
    """One account's ledger after this run (prior + new strikes, then the appeals' reversals)
    and its suspension if the new strikes took it over the threshold, else None."""
    # The ledger over every run holds a strike once per run that wrote it: one copy each.
    prior = merge_ledger(prior, [])
    earned = sorted(new, key=lambda pair: (pair[1].uploaded_at, pair[1].decision_id))
    ledger = merge_ledger(prior, [strike for strike, _ in earned])
    for decision_id, at in reversals:
        ledger = reverse(ledger, decision_id, at)
    if not earned:
        return ledger, None
    now = max(strike.issued_at for strike, _ in earned)
    # A strike both prior and earned is a decision replayed (a restart after a crash, a rerun):
    # it counts as earned now, so a suspension it brought that was not written yet comes again
    # (with the same id) rather than never.
    earned_ids = {strike.strike_id for strike, _ in earned}
    was = standing(account_id, [s for s in prior if s.strike_id not in earned_ids], now, policy)
    status = standing(account_id, ledger, now, policy)  # reversals already applied
    if not status.suspended or was.suspended:
        return ledger, None
    held_before = {s.strike_id for s in prior} - earned_ids
    counting = {s.strike_id for s in ledger if s.active(now)} - held_before
    points = was.active_points
    for strike, decision in earned:  # in event time: the decision whose strike crossed decides
        if strike.strike_id in counting:
            points += strike.weight
            if points >= policy.suspend_at:
                return ledger, Suspension(status, decision)
    return ledger, Suspension(status, earned[-1][1])


SUSPENSION_RULE = "strikes-suspend-at"


def suspension_decision(suspension: Suspension, policy: Policy) -> Decision:
    """Suspending an account is a decision of its own, with a statement of reasons: its id and
    time come from the decision that crossed the threshold (its event time), so a rerun, or
    the streaming job in event time, gives the same ids."""
    crossing, account_id = suspension.crossing, suspension.standing.account_id
    return Decision(
        decision_id=stable_id(account_id, "suspension", crossing.decision_id, policy.policy_id, policy.version),
        content_id="",
        account_id=account_id,
        action=SUSPEND_ACTION,
        category=crossing.category,
        rule_id=SUSPENSION_RULE,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        fused_score=None,
        detection_method=crossing.detection_method,
        automated_decision="fully",
        media_type=crossing.media_type,
        surface=crossing.surface,
        country=crossing.country,
        uploaded_at=crossing.uploaded_at,
        decided_at=crossing.uploaded_at,
        targets=(SUSPENSION_TARGET,),
        notified_at=None,
    )
