"""Operating points from error cost: which fused score each action tier should start at.

    python -m models.thresholds --scores SCORES --costs COSTS.yaml --out THRESHOLDS.json
        [--prevalence 0.02] [--daily_uploads 1000000]

SCORES is labelled evaluation data (JSON Lines or Parquet with `score` and `label`, 1 for
synthetic; the evaluation report's test split, say). COSTS names, per action tier, the cost
of acting on a real item (a false positive) and of not acting on a synthetic one (a false
negative) in that tier's terms, e.g.:

    tiers:
      label:        {cost_false_positive: 1,  cost_false_negative: 2}
      reduce_reach: {cost_false_positive: 4,  cost_false_negative: 5}
      remove:       {cost_false_positive: 40, cost_false_negative: 10}

Severe harm (a costly miss) pulls a threshold down (recall); an action that hurts a real
uploader pulls it up (precision). For each tier the threshold minimises the expected cost
at the production prevalence (evaluation sets are balanced, production is not: positives
and negatives are re-weighted to `--prevalence`). Stricter tiers never start below milder
ones. The output gives, per tier, the threshold with its expected precision, recall,
false-positive rate and daily volume, ready to copy into a policy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import yaml

TIER_ORDER = ("label", "reduce_reach", "remove")


@dataclasses.dataclass(frozen=True)
class TierCost:
    cost_false_positive: float
    cost_false_negative: float


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    tier: str
    threshold: float
    expected_cost_per_item: float
    precision: float | None
    recall: float
    false_positive_rate: float
    daily_volume: float


def _rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    flagged = scores >= threshold
    recall = float((flagged & labels).sum() / max(labels.sum(), 1))
    fpr = float((flagged & ~labels).sum() / max((~labels).sum(), 1))
    return recall, fpr


def operating_point(
    tier: str, labels: np.ndarray, scores: np.ndarray, cost: TierCost, prevalence: float, daily_uploads: float,
    minimum: float = 0.0,
) -> OperatingPoint:  # fmt: skip
    """The threshold (at or above `minimum`) with the least expected cost per item."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    candidates = np.unique(np.r_[scores[scores >= minimum], minimum, np.nextafter(1.0, 2.0)])
    best: tuple[float, float] | None = None
    for threshold in candidates:
        recall, fpr = _rates(labels, scores, threshold)
        expected = (
            prevalence * (1 - recall) * cost.cost_false_negative + (1 - prevalence) * fpr * cost.cost_false_positive
        )
        if best is None or expected < best[1] - 1e-12:
            best = (float(threshold), expected)
    threshold, expected = best
    recall, fpr = _rates(labels, scores, threshold)
    flagged_share = prevalence * recall + (1 - prevalence) * fpr
    precision = prevalence * recall / flagged_share if flagged_share > 0 else None
    return OperatingPoint(tier, threshold, expected, precision, recall, fpr, flagged_share * daily_uploads)


def choose_thresholds(
    labels: np.ndarray, scores: np.ndarray, costs: dict[str, TierCost], prevalence: float, daily_uploads: float
) -> list[OperatingPoint]:
    """One operating point per tier, milder tiers first; a stricter tier never starts lower."""
    points, floor = [], 0.0
    for tier in (t for t in TIER_ORDER if t in costs):
        point = operating_point(tier, labels, scores, costs[tier], prevalence, daily_uploads, minimum=floor)
        points.append(point)
        floor = point.threshold
    return points


def load_scores(path: str) -> tuple[np.ndarray, np.ndarray]:
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["score", "label"]).to_pydict()
        rows = list(zip(table["score"], table["label"]))
    else:
        rows = [
            (r["score"], r["label"]) for r in map(json.loads, filter(str.strip, Path(path).read_text().splitlines()))
        ]
    rows = [(s, y) for s, y in rows if s is not None]
    return np.asarray([y for _, y in rows], dtype=bool), np.asarray([s for s, _ in rows], dtype=np.float64)


def load_costs(path: str) -> dict[str, TierCost]:
    document = yaml.safe_load(Path(path).read_text())
    tiers = document.get("tiers") if isinstance(document, dict) else None
    if not isinstance(tiers, dict) or not tiers:
        raise ValueError(f"{path}: expected a 'tiers' mapping of {TIER_ORDER}")
    costs = {}
    for tier, values in tiers.items():
        if tier not in TIER_ORDER:
            raise ValueError(f"{path}: tiers.{tier}: unknown tier; expected one of {TIER_ORDER}")
        try:
            cost = TierCost(float(values["cost_false_positive"]), float(values["cost_false_negative"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{path}: tiers.{tier}: needs numeric cost_false_positive and cost_false_negative"
            ) from None
        if cost.cost_false_positive <= 0 or cost.cost_false_negative <= 0:
            raise ValueError(f"{path}: tiers.{tier}: costs must be positive")
        costs[tier] = cost
    return costs


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.thresholds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", required=True, help="JSON Lines or Parquet with score and label (1 = synthetic).")
    parser.add_argument("--costs", required=True, help="YAML with per-tier false-positive and false-negative costs.")
    parser.add_argument("--out", required=True, help="Where to write the thresholds (JSON).")
    parser.add_argument("--prevalence", type=float, default=0.02, help="Share of synthetic uploads in production.")
    parser.add_argument("--daily_uploads", type=float, default=1_000_000, help="For the expected daily volumes.")
    args = parser.parse_args(argv)
    if not 0 < args.prevalence < 1:
        parser.error("--prevalence must be between 0 and 1")
    labels, scores = load_scores(args.scores)
    if labels.all() or not labels.any():
        parser.error("--scores must hold both synthetic and real items")
    points = choose_thresholds(labels, scores, load_costs(args.costs), args.prevalence, args.daily_uploads)
    document = {
        "scores": args.scores,
        "costs": args.costs,
        "prevalence": args.prevalence,
        "daily_uploads": args.daily_uploads,
        "evaluation_items": len(labels),
        "operating_points": [dataclasses.asdict(p) for p in points],
    }
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    for point in points:
        precision = "-" if point.precision is None else f"{point.precision:.3f}"
        print(
            f"{point.tier:<13} threshold {point.threshold:.4f}  precision {precision}  recall {point.recall:.3f}  "
            f"fpr {point.false_positive_rate:.4f}  ~{point.daily_volume:,.0f}/day"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run())
