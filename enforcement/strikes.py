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
from enforcement.policy import StrikePolicy
from schemas.records import Decision, parse_timestamp
from schemas.version import PIPELINE_VERSION


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
    """Prior ledger plus new strikes; a rerun's strike (same id) replaces nothing and adds nothing."""
    merged = {s.strike_id: s for s in prior}
    for strike in new:
        merged.setdefault(strike.strike_id, strike)
    return sorted(merged.values(), key=lambda s: (s.issued_at, s.strike_id))


def update_account(
    account_id: str,
    prior: Iterable[Strike],
    new: Iterable[Strike],
    reversals: Iterable[tuple[str, dt.datetime]],
    policy: StrikePolicy,
) -> tuple[list[Strike], Standing | None]:
    """One account's ledger after this run (prior + new strikes, then the appeals' reversals)
    and its standing if the new strikes took it over the suspension threshold, else None."""
    prior, new = list(prior), list(new)
    ledger = merge_ledger(prior, new)
    for decision_id, at in reversals:
        ledger = reverse(ledger, decision_id, at)
    if not new:
        return ledger, None
    now = max(s.issued_at for s in new)
    was = standing(account_id, prior, now, policy)
    status = standing(account_id, ledger, now, policy)  # reversals already applied
    return ledger, status if status.suspended and not was.suspended else None
