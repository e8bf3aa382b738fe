"""Thresholds from error cost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.thresholds import TierCost, choose_thresholds, load_costs, operating_point, run


def _scores(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.random(4000) < 0.5
    scores = np.clip(np.where(labels, rng.normal(0.7, 0.15, 4000), rng.normal(0.3, 0.15, 4000)), 0, 1)
    return labels, scores


def test_costly_misses_pull_the_threshold_down_and_costly_false_alarms_up():
    labels, scores = _scores()
    recall_first = operating_point("t", labels, scores, TierCost(1, 20), 0.5, 1000)
    precision_first = operating_point("t", labels, scores, TierCost(20, 1), 0.5, 1000)
    assert recall_first.threshold < 0.5 < precision_first.threshold
    assert recall_first.recall > 0.9 and precision_first.false_positive_rate < 0.01


def test_rare_positives_in_production_raise_the_threshold():
    labels, scores = _scores()
    balanced = operating_point("t", labels, scores, TierCost(1, 1), 0.5, 1000)
    rare = operating_point("t", labels, scores, TierCost(1, 1), 0.01, 1000)
    assert rare.threshold > balanced.threshold
    assert rare.daily_volume < balanced.daily_volume


def test_stricter_tiers_never_start_below_milder_ones():
    labels, scores = _scores()
    costs = {"label": TierCost(1, 2), "reduce_reach": TierCost(2, 1), "remove": TierCost(0.5, 3)}
    points = choose_thresholds(labels, scores, costs, 0.1, 1000)
    thresholds = [p.threshold for p in points]
    assert [p.tier for p in points] == ["label", "reduce_reach", "remove"]
    assert thresholds == sorted(thresholds)


def test_cli_writes_points_and_rejects_bad_costs(tmp_path):
    labels, scores = _scores()
    scores_path = tmp_path / "scores.jsonl"
    scores_path.write_text("\n".join(json.dumps({"score": float(s), "label": int(y)}) for s, y in zip(scores, labels)))
    costs = tmp_path / "costs.yaml"
    costs.write_text("tiers:\n  label: {cost_false_positive: 1, cost_false_negative: 2}\n"
                     "  remove: {cost_false_positive: 40, cost_false_negative: 10}\n")  # fmt: skip
    out = tmp_path / "thresholds.json"
    assert run(["--scores", str(scores_path), "--costs", str(costs), "--out", str(out)]) == 0
    points = json.loads(out.read_text())["operating_points"]
    assert [p["tier"] for p in points] == ["label", "remove"]
    assert points[1]["precision"] > points[0]["precision"]
    costs.write_text("tiers:\n  obliterate: {cost_false_positive: 1, cost_false_negative: 1}\n")
    with pytest.raises(ValueError, match="unknown tier"):
        load_costs(str(costs))
