"""Automation gated on measured agreement with reviewers. No Beam.

Each blind verdict (a quality sample of an enforced rule, or an item of a rule in `sampled`
mode) is one trial of its rule: does the reviewer find the item violating and deserving at
least the rule's action (`ReviewOutcome.agrees`)? The
agreement's lower bound is the Wilson score interval's (95%), which stays honest at small
counts and at agreement near 1, where the normal approximation claims certainty it has not
earned. A rule with at least `min_samples` verdicts whose lower bound is under its
`target_precision` is recommended `sampled`; one whose lower bound clears the target is
recommended `enforce`. Only the downgrade happens by itself (`downgrades`): promotion is a
change to the policy file, made by a person.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enforcement.policy import Policy

Z_95 = 1.959963984540054


def wilson_lower_bound(agreements: int, samples: int, z: float = Z_95) -> float:
    """Lower end of the Wilson score interval for `agreements` of `samples` (0 with none)."""
    if samples <= 0:
        return 0.0
    share = agreements / samples
    centre = share + z * z / (2 * samples)
    spread = z * math.sqrt(share * (1 - share) / samples + z * z / (4 * samples * samples))
    return max(0.0, (centre - spread) / (1 + z * z / samples))


@dataclasses.dataclass(frozen=True)
class RuleAgreement:
    """One automated rule's measured agreement with reviewers, and what its mode should be."""

    rule_id: str
    action: str
    mode: str  # as the policy sets it
    samples: int
    agreements: int
    target_precision: float | None
    min_samples: int

    @property
    def agreement(self) -> float | None:
        return self.agreements / self.samples if self.samples else None

    @property
    def lower_bound(self) -> float:
        return wilson_lower_bound(self.agreements, self.samples)

    @property
    def measured(self) -> bool:
        return self.samples >= self.min_samples and self.target_precision is not None

    @property
    def recommended_mode(self) -> str:
        if self.mode == "shadow" or not self.measured:
            return self.mode
        return "enforce" if self.lower_bound >= self.target_precision else "sampled"

    @property
    def reason(self) -> str:
        if self.target_precision is None:
            return "no target_precision set: not gated"
        if self.samples < self.min_samples:
            return f"{self.samples} of the {self.min_samples} verdicts needed to judge"
        relation = ">=" if self.lower_bound >= self.target_precision else "<"
        return (
            f"agreement {self.agreements}/{self.samples} = {self.agreement:.3f}, 95% lower bound "
            f"{self.lower_bound:.3f} {relation} target {self.target_precision:.3f}"
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "action": self.action,
            "mode": self.mode,
            "samples": self.samples,
            "agreements": self.agreements,
            "agreement": self.agreement,
            "lower_bound": round(self.lower_bound, 6),
            "target_precision": self.target_precision,
            "min_samples": self.min_samples,
            "recommended_mode": self.recommended_mode,
            "reason": self.reason,
        }


def measure_agreement(policy: Policy, reviews: Iterable[Mapping[str, Any]]) -> list[RuleAgreement]:
    """Per rule of `policy` with an `automation` section: its blind verdicts (rows of the
    `reviews` table with `blind` true and a `machine_action`) counted and judged."""
    counts: dict[str, list[int]] = {}
    for row in reviews:
        if not row.get("blind") or row.get("machine_action") is None or row.get("agrees") is None:
            continue
        tally = counts.setdefault(str(row["rule_id"]), [0, 0])
        tally[0] += 1
        tally[1] += bool(row["agrees"])
    return [
        RuleAgreement(
            rule.rule_id,
            rule.action,
            rule.mode,
            *counts.get(rule.rule_id, (0, 0)),
            rule.automation.target_precision,
            rule.automation.min_samples,
        )
        for rule in policy.rules
        if rule.automation is not None
    ]


def downgrades(measured: Iterable[RuleAgreement]) -> dict[str, RuleAgreement]:
    """The rules in `enforce` whose measured agreement has fallen under their target: each
    runs in `sampled` mode this run (its items go to review instead of being actioned)."""
    return {m.rule_id: m for m in measured if m.mode == "enforce" and m.recommended_mode == "sampled"}
