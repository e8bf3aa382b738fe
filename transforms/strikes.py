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

import apache_beam as beam

from pipelines.version import PIPELINE_VERSION
from schemas.records import Decision, parse_timestamp
from transforms.policy import PolicyError, stable_id


@dataclasses.dataclass(frozen=True)
class StrikePolicy:
    """How much each action weighs, how long a strike counts, where suspension starts."""

    weights: Mapping[str, float]
    window_days: float
    suspend_at: float

    @classmethod
    def parse(cls, document: Any) -> StrikePolicy:
        """Validates the policy file's `strikes` section.

        Raises:
            PolicyError: names the field and what was expected.
        """
        if not isinstance(document, Mapping):
            raise PolicyError("strikes: expected a mapping with weights, window_days, suspend_at")
        weights = document.get("weights")
        if not isinstance(weights, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in weights.values()
        ):
            raise PolicyError("strikes.weights: expected a mapping of action -> non-negative number")
        for field in ("window_days", "suspend_at"):
            value = document.get(field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise PolicyError(f"strikes.{field}: expected a positive number, got {value!r}")
        return cls({str(k): float(v) for k, v in weights.items()}, float(document["window_days"]),
                   float(document["suspend_at"]))  # fmt: skip


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


class _UpdateAccount(beam.DoFn):
    def __init__(self, policy: StrikePolicy):
        self._policy = policy

    def process(self, keyed):
        account_id, grouped = keyed
        ledger = merge_ledger(grouped["prior"], grouped["new"])
        for decision_id, at in grouped.get("reversals", []):
            ledger = reverse(ledger, decision_id, at)
        yield from ledger
        if grouped["new"]:
            now = max(s.issued_at for s in grouped["new"])
            was = standing(account_id, grouped["prior"], now, self._policy)
            status = standing(account_id, ledger, now, self._policy)  # reversals already applied
            if status.suspended and not was.suspended:
                yield beam.pvalue.TaggedOutput("suspensions", status)


def _keyed(strike: Strike) -> tuple[str, Strike]:
    return strike.account_id, strike


class UpdateStrikeLedger(beam.PTransform):
    """(prior strikes, decisions) -> the new ledger and the accounts that crossed into suspension.

    Takes a dict {"prior": PCollection[Strike], "decisions": PCollection[Decision]} and,
    optionally, "reversals": PCollection[(account_id, (decision_id, reversed_at))] from appeals;
    returns (ledger, suspensions).
    """

    def __init__(self, policy: StrikePolicy):
        super().__init__()
        self._policy = policy

    def expand(self, inputs):
        new = inputs["decisions"] | "EarnStrikes" >> beam.FlatMap(_earned, policy=self._policy)
        outputs = (
            {
                "prior": inputs["prior"] | "KeyPrior" >> beam.Map(_keyed),
                "new": new | "KeyNew" >> beam.Map(_keyed),
                **({"reversals": inputs["reversals"]} if "reversals" in inputs else {}),
            }
            | "ByAccount" >> beam.CoGroupByKey()
            | "Update" >> beam.ParDo(_UpdateAccount(self._policy)).with_outputs("suspensions", main="ledger")
        )
        return outputs.ledger, outputs.suspensions


def _earned(decision: Decision, policy: StrikePolicy):
    strike = strike_for(decision, policy)
    if strike is not None:
        yield strike


class ReadStrikeLedger(beam.PTransform):
    """Reads a strike ledger (Parquet files of the `strike_ledger` table) into `Strike`s."""

    def __init__(self, files: tuple[str, ...]):
        super().__init__()
        self._files = tuple(files)

    def expand(self, pipeline):
        from transforms.warehouse import ReadTableRows

        return pipeline | "ReadLedger" >> ReadTableRows(self._files) | "ToStrikes" >> beam.Map(Strike.from_row)
