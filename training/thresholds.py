"""Operating points from error cost and a risk budget: where each policy tier should start.

    python -m training.thresholds --scores SCORES --costs COSTS.yaml --out THRESHOLDS.json
        [--check SCORES] [--prevalence 0.02] [--daily_uploads 1000000]

SCORES is labelled evaluation data (JSON Lines or Parquet with `label`, 1 for synthetic,
`content_score`, `fused_score` and, optionally, `source`; `training.evaluate` writes the
validation and the test split's; a file with a plain `score` column is read as fused scores).
Thresholds are chosen on one set (the validation split) and `--check` measures them on
another they were not chosen on (the test split): a threshold chosen and reported on the same
items flatters itself. COSTS
names, per tier, the score it reads (`content` or `fused`), the cost of acting on a real
item (a false positive) and of not acting on a synthetic one (a false negative), optionally
a cap on the false-positive rate (the risk budget) and a tier it may not start below:

    tiers:
      review_fused:   {score: fused,   cost_false_positive: 1,  cost_false_negative: 3}
      review_content: {score: content, cost_false_positive: 1,  cost_false_negative: 3}
      remove:         {score: content, cost_false_positive: 30, cost_false_negative: 10,
                       max_false_positive_rate: 0.01, at_least: review_content}

Severe harm (a costly miss) pulls a threshold down (recall); an action that hurts a real
uploader pulls it up (precision). For each tier the threshold minimises the expected cost at
the production prevalence (evaluation sets are balanced, production is not: positives and
negatives are re-weighted to `--prevalence`) among the thresholds whose false-positive rate
on the real items stays within the cap, placed in the middle (in log-odds) of the gap
between the lowest score it flags and the highest it does not rather than on an item's score.
An item without the score (no content evidence voted) is never flagged by that tier. The output gives each tier's threshold with its expected
precision, recall, false-positive rate and daily volume, and the false-positive rate per
source of real items, ready to copy into a policy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from schemas.config import refuse_unknown

SCORE_KINDS = ("content", "fused")


@dataclasses.dataclass(frozen=True)
class TierCost:
    cost_false_positive: float
    cost_false_negative: float
    score: str = "fused"
    max_false_positive_rate: float | None = None
    at_least: str | None = None


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    tier: str
    score: str
    threshold: float
    expected_cost_per_item: float
    precision: float | None
    recall: float
    false_positive_rate: float
    daily_volume: float
    false_positive_rate_cap: float | None = None


def _precision(recall: float, fpr: float, prevalence: float) -> float | None:
    """Precision at `prevalence`: the share of flagged items that are synthetic in production."""
    flagged_share = prevalence * recall + (1 - prevalence) * fpr
    return prevalence * recall / flagged_share if flagged_share > 0 else None


def _rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    flagged = scores >= threshold  # NaN (no score) is never flagged
    recall = float((flagged & labels).sum() / max(labels.sum(), 1))
    fpr = float((flagged & ~labels).sum() / max((~labels).sum(), 1))
    return recall, fpr


def operating_point(
    tier: str, labels: np.ndarray, scores: np.ndarray, cost: TierCost, prevalence: float, daily_uploads: float,
    minimum: float = 0.0,
) -> OperatingPoint:  # fmt: skip
    """The threshold (at or above `minimum`, within the tier's false-positive cap) with the
    least expected cost per item."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    present = scores[~np.isnan(scores)]
    candidates = np.unique(np.r_[present[present >= minimum], minimum, np.nextafter(1.0, 2.0)])
    best: tuple[float, float] | None = None
    for threshold in candidates:
        recall, fpr = _rates(labels, scores, threshold)
        if cost.max_false_positive_rate is not None and fpr > cost.max_false_positive_rate:
            continue
        expected = (
            prevalence * (1 - recall) * cost.cost_false_negative + (1 - prevalence) * fpr * cost.cost_false_positive
        )
        if best is None or expected < best[1] - 1e-12:
            best = (float(threshold), expected)
    threshold, expected = best  # the top candidate flags nothing, so the cap always admits one
    threshold = _middle_of_gap(present, threshold, minimum)
    recall, fpr = _rates(labels, scores, threshold)
    flagged_share = prevalence * recall + (1 - prevalence) * fpr
    return OperatingPoint(
        tier, cost.score, threshold, expected, _precision(recall, fpr, prevalence), recall, fpr,
        flagged_share * daily_uploads,
        cost.max_false_positive_rate,
    )  # fmt: skip


def _middle_of_gap(present: np.ndarray, threshold: float, minimum: float) -> float:
    """The threshold moved down to the middle (in log-odds) of the gap between the score it sits
    on and the next score below it, never below `minimum`.

    Anywhere in the gap the evaluation set's rates are the same; at its top edge the threshold
    sits on the score of an item it flags, so the first real item of new data that scores a hair
    higher than any seen is flagged. The middle keeps the widest margin to both sides.
    """
    below = present[present < threshold]
    if not below.size or threshold > 1.0:
        return threshold
    low, high = np.clip([below.max(), threshold], 1e-12, 1 - 1e-12)
    middle = float(1 / (1 + np.exp(-(np.log(low / (1 - low)) + np.log(high / (1 - high))) / 2)))
    if not below.max() < middle <= threshold:  # a gap too narrow for floating point
        return threshold
    return max(middle, minimum)


def choose_thresholds(
    labels: np.ndarray,
    scores: Mapping[str, np.ndarray],
    costs: Mapping[str, TierCost],
    prevalence: float,
    daily_uploads: float,
) -> list[OperatingPoint]:
    """One operating point per tier, in the order given; a tier with `at_least` starts no lower
    than that tier (which must come before it)."""
    points: dict[str, OperatingPoint] = {}
    for tier, cost in costs.items():
        floor = points[cost.at_least].threshold if cost.at_least else 0.0
        points[tier] = operating_point(tier, labels, scores[cost.score], cost, prevalence, daily_uploads, floor)
    return list(points.values())


def false_positive_rates_by_source(
    labels: np.ndarray, scores: np.ndarray, sources: list[str], threshold: float
) -> dict[str, dict[str, float | int]]:
    """Per source of real items: how many there are and what share the threshold flags."""
    result = {}
    for source in sorted(set(sources)):
        real = np.asarray([s == source for s in sources]) & ~labels
        if real.any():
            flagged = int((scores[real] >= threshold).sum())
            result[source] = {"real_items": int(real.sum()), "flagged": flagged, "fpr": flagged / int(real.sum())}
    return result


def rates_on(
    scored: tuple[np.ndarray, dict[str, np.ndarray], list[str]], point: OperatingPoint, prevalence: float
) -> dict[str, Any]:
    """`point`'s threshold applied to other labelled scores: recall, false-positive rate (with
    the count behind it), precision at `prevalence`, and the false-positive rate per source."""
    labels, scores, sources = scored
    values = scores[point.score]
    recall, fpr = _rates(labels, values, point.threshold)
    return {
        "items": len(labels),
        "real_items": int((~labels).sum()),
        "false_positives": int(((values >= point.threshold) & ~labels).sum()),
        "recall": recall,
        "false_positive_rate": fpr,
        "precision": _precision(recall, fpr, prevalence),
        "fpr_by_source": false_positive_rates_by_source(labels, values, sources, point.threshold),
    }


def policy_thresholds(policy_path: str) -> dict[str, float]:
    """The score thresholds a policy acts at: the lowest content score a remove rule needs
    (`remove`), and the content and fused scores its plain review rules start at."""
    from enforcement.policy import load_policy

    policy = load_policy(policy_path)
    thresholds: dict[str, float] = {}
    for rule in policy.rules:
        conditions = dict(rule.conditions)
        if rule.action == "remove" and "min_content_score" in conditions:
            thresholds["remove"] = min(thresholds.get("remove", 1.0), conditions["min_content_score"])
        if rule.action == "human_review" and set(conditions) == {"min_content_score"}:
            thresholds["review_content"] = conditions["min_content_score"]
        if rule.action == "human_review" and set(conditions) == {"min_fused_score"}:
            thresholds["review_fused"] = conditions["min_fused_score"]
    return thresholds


def load_scores(path: str) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """(labels, {"content": ..., "fused": ...}, sources); a missing score is NaN."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    fused = [r.get("fused_score", r.get("score")) for r in rows]
    content = [r.get("content_score", r.get("score")) for r in rows]
    keep = [i for i, f in enumerate(fused) if f is not None]

    def column(values: list) -> np.ndarray:
        return np.asarray([np.nan if values[i] is None else values[i] for i in keep], dtype=np.float64)

    labels = np.asarray([rows[i]["label"] for i in keep], dtype=bool)
    return labels, {"content": column(content), "fused": column(fused)}, [rows[i].get("source", "-") for i in keep]


def load_costs(path: str) -> dict[str, TierCost]:
    document = yaml.safe_load(Path(path).read_text())
    tiers = document.get("tiers") if isinstance(document, dict) else None
    if not isinstance(tiers, dict) or not tiers:
        raise ValueError(f"{path}: expected a 'tiers' mapping")
    refuse_unknown(document, ("tiers",), f"{path}: ")
    costs: dict[str, TierCost] = {}
    for tier, values in tiers.items():
        where = f"{path}: tiers.{tier}"
        if not isinstance(values, dict):
            raise ValueError(f"{where}: expected a mapping")
        refuse_unknown(values, [f.name for f in dataclasses.fields(TierCost)], f"{where}.")
        try:
            cost = TierCost(float(values["cost_false_positive"]), float(values["cost_false_negative"]),
                            str(values.get("score", "fused")),
                            None if values.get("max_false_positive_rate") is None
                            else float(values["max_false_positive_rate"]),
                            values.get("at_least"))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: needs numeric cost_false_positive and cost_false_negative") from None
        if cost.cost_false_positive <= 0 or cost.cost_false_negative <= 0:
            raise ValueError(f"{where}: costs must be positive")
        if cost.score not in SCORE_KINDS:
            raise ValueError(f"{where}.score: expected one of {SCORE_KINDS}, got {cost.score!r}")
        if cost.max_false_positive_rate is not None and not 0 <= cost.max_false_positive_rate <= 1:
            raise ValueError(f"{where}.max_false_positive_rate: expected a rate between 0 and 1")
        if cost.at_least is not None and cost.at_least not in costs:
            raise ValueError(f"{where}.at_least: {cost.at_least!r} is not a tier listed before it")
        costs[tier] = cost
    return costs


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.thresholds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", required=True, help="JSON Lines or Parquet: label, content_score, fused_score.")
    parser.add_argument("--costs", required=True, help="YAML with per-tier score, costs and false-positive cap.")
    parser.add_argument("--out", required=True, help="Where to write the thresholds (JSON).")
    parser.add_argument("--prevalence", type=float, default=0.02, help="Share of synthetic uploads in production.")
    parser.add_argument("--daily_uploads", type=float, default=1_000_000, help="For the expected daily volumes.")
    parser.add_argument(
        "--check",
        default=None,
        help="Labelled scores the thresholds were not chosen on (the test split when --scores is the validation "
        "split): each tier's rates there are written beside the chosen ones.",
    )
    args = parser.parse_args(argv)
    if not 0 < args.prevalence < 1:
        parser.error("--prevalence must be between 0 and 1")
    labels, scores, sources = load_scores(args.scores)
    if labels.all() or not labels.any():
        parser.error("--scores must hold both synthetic and real items")
    points = choose_thresholds(labels, scores, load_costs(args.costs), args.prevalence, args.daily_uploads)
    checked = load_scores(args.check) if args.check else None
    checks = {p.tier: rates_on(checked, p, args.prevalence) for p in points} if checked else {}
    document = {
        "scores": args.scores,
        "check": args.check,
        "costs": args.costs,
        "prevalence": args.prevalence,
        "daily_uploads": args.daily_uploads,
        "evaluation_items": len(labels),
        "operating_points": [
            dataclasses.asdict(p)
            | {"fpr_by_source": false_positive_rates_by_source(labels, scores[p.score], sources, p.threshold)}
            | ({"check": checks[p.tier]} if checks else {})
            for p in points
        ],
    }
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    for point in points:
        precision = "-" if point.precision is None else f"{point.precision:.3f}"
        print(
            f"{point.tier:<15} {point.score:<8} threshold {point.threshold:.4f}  precision {precision}  "
            f"recall {point.recall:.3f}  fpr {point.false_positive_rate:.4f}  ~{point.daily_volume:,.0f}/day"
        )
        if checks:
            rates = checks[point.tier]
            print(
                f"{'':<15} {'check':<8} recall {rates['recall']:.3f}  fpr {rates['false_positive_rate']:.4f}  "
                f"({rates['false_positives']} of {rates['real_items']} real items)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(run())
