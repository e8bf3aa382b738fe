"""The policy file's `review` and `automation` sections, the vocabulary of the review loop,
and the error and number check every part of the policy file uses.

Apart from `enforcement.policy` (the rules) and `enforcement.review` (what reaches people and
what verdicts do), so both read these without importing each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from schemas.config import refuse_unknown

# Actions that restrict an item: what automation carries out, and what reviewers sample.
RESTRICTIVE_ACTIONS = ("label", "reduce_reach", "remove")
VERDICT_ACTIONS = ("none", *RESTRICTIVE_ACTIONS)  # from mildest to harshest
MODES = ("shadow", "sampled", "enforce")
SLA_TIERS = ("high_profile", "notice", "quality_sample", "campaign", "default")
QUEUE_KINDS = ("routed", "sampled_rule", "quality_sample", "campaign")


class PolicyError(ValueError):
    """The policy file is wrong; the message names the field and what was expected."""

    reason = "policy_error"


def fraction(where: str, value: Any) -> float:
    """A number between 0 and 1 (a score threshold, a rate, a weight)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise PolicyError(f"{where}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise PolicyError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def _weights(where: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: expected a mapping of name -> number")
    return {str(k): fraction(f"{where}.{k}", v) for k, v in value.items()}


@dataclasses.dataclass(frozen=True)
class Automation:
    """How far a rule's restrictive action is automated, and the evidence it must keep showing.

    `shadow`: the rule is recorded where it matches and the next rule decides. `sampled`: its
    items go to review, blind, and each verdict measures it. `enforce`: it acts, and a share
    `sample_rate` of its decisions is reviewed blind. While at least `min_samples` verdicts
    are in, the lower confidence bound of its agreement with reviewers must stay at or above
    `target_precision`, or the job downgrades it to `sampled` by itself.
    """

    mode: str = "enforce"
    sample_rate: float = 0.0
    target_precision: float | None = None
    min_samples: int = 30

    @classmethod
    def parse(cls, document: Any, where: str) -> Automation:
        if not isinstance(document, Mapping):
            raise PolicyError(f"{where}: expected a mapping with mode, sample_rate, target_precision, min_samples")
        refuse_unknown(document, ("mode", "sample_rate", "target_precision", "min_samples"), f"{where}.", PolicyError)
        mode = document.get("mode", "enforce")
        if mode not in MODES:
            raise PolicyError(f"{where}.mode: expected one of {MODES}, got {mode!r}")
        target = document.get("target_precision")
        min_samples = document.get("min_samples", 30)
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise PolicyError(f"{where}.min_samples: expected a positive whole number, got {min_samples!r}")
        return cls(
            mode,
            fraction(f"{where}.sample_rate", document.get("sample_rate", 0.0)),
            None if target is None else fraction(f"{where}.target_precision", target),
            min_samples,
        )


@dataclasses.dataclass(frozen=True)
class ReviewSettings:
    """The policy's `review` section: SLA per tier, severity per category, reach per surface."""

    sla_hours: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"high_profile": 4.0, "notice": 24.0, "quality_sample": 72.0, "default": 48.0}
    )
    severity: Mapping[str, float] = dataclasses.field(default_factory=dict)  # category -> 0..1 (default 0.5)
    reach: Mapping[str, float] = dataclasses.field(default_factory=dict)  # surface -> 0..1 (default 0.5)
    capacity_per_day: float | None = None  # reviewer decisions a day (the simulation's load check)

    @classmethod
    def parse(cls, document: Any) -> ReviewSettings:
        if not isinstance(document, Mapping):
            raise PolicyError("review: expected a mapping with sla_hours, severity, reach, capacity_per_day")
        refuse_unknown(document, ("sla_hours", "severity", "reach", "capacity_per_day"), "review.", PolicyError)
        sla = document.get("sla_hours", cls().sla_hours)
        if not isinstance(sla, Mapping) or set(sla) - set(SLA_TIERS) or "default" not in sla:
            raise PolicyError(f"review.sla_hours: expected hours per tier of {SLA_TIERS}, with default")
        capacity = document.get("capacity_per_day")
        return cls(
            {tier: _positive(f"review.sla_hours.{tier}", hours) for tier, hours in sla.items()},
            _weights("review.severity", document.get("severity", {})),
            _weights("review.reach", document.get("reach", {})),
            None if capacity is None else _positive("review.capacity_per_day", capacity),
        )

    def sla(self, tier: str) -> dt.timedelta:
        return dt.timedelta(hours=self.sla_hours.get(tier, self.sla_hours["default"]))
