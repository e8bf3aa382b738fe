"""Thresholds from error cost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.thresholds import TierCost, choose_thresholds, load_costs, operating_point, run


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


def test_a_tier_never_starts_below_the_tier_it_must_follow():
    labels, scores = _scores()
    costs = {
        "review": TierCost(1, 2, score="content"),
        "remove": TierCost(0.5, 3, score="content", at_least="review"),
    }
    points = choose_thresholds(labels, {"content": scores, "fused": scores}, costs, 0.1, 1000)
    assert [p.tier for p in points] == ["review", "remove"]
    assert points[1].threshold >= points[0].threshold


def test_the_risk_budget_caps_the_false_positive_rate():
    labels, scores = _scores()
    loose = operating_point("remove", labels, scores, TierCost(1, 20), 0.5, 1000)
    capped = operating_point("remove", labels, scores, TierCost(1, 20, max_false_positive_rate=0.01), 0.5, 1000)
    assert loose.false_positive_rate > 0.01 >= capped.false_positive_rate
    assert capped.threshold > loose.threshold


def test_items_without_the_score_are_never_flagged():
    labels = np.array([True, True, False, False])
    content = np.array([0.99, np.nan, np.nan, 0.1])
    point = operating_point("remove", labels, content, TierCost(1, 1), 0.5, 1000)
    assert point.recall == 0.5 and point.false_positive_rate == 0.0


def test_cli_writes_points_per_score_and_rejects_bad_costs(tmp_path):
    labels, scores = _scores()
    scores_path = tmp_path / "scores.jsonl"
    sources = ["generator", "klettres"]
    scores_path.write_text(
        "\n".join(
            json.dumps(
                {"content_score": float(s), "fused_score": float(s) * 0.9, "label": int(y), "source": sources[i % 2]}
            )
            for i, (s, y) in enumerate(zip(scores, labels))
        )
    )
    costs = tmp_path / "costs.yaml"
    costs.write_text(
        "tiers:\n  review_fused: {score: fused, cost_false_positive: 1, cost_false_negative: 2}\n"
        "  remove: {score: content, cost_false_positive: 40, cost_false_negative: 10, max_false_positive_rate: 0.01}\n"
    )
    out = tmp_path / "thresholds.json"
    assert run(["--scores", str(scores_path), "--costs", str(costs), "--out", str(out)]) == 0
    points = json.loads(out.read_text())["operating_points"]
    assert [(p["tier"], p["score"]) for p in points] == [("review_fused", "fused"), ("remove", "content")]
    assert points[1]["false_positive_rate"] <= 0.01
    assert set(points[1]["fpr_by_source"]) == set(sources)
    costs.write_text("tiers:\n  remove: {score: vibes, cost_false_positive: 1, cost_false_negative: 1}\n")
    with pytest.raises(ValueError, match="score: expected one of"):
        load_costs(str(costs))
    costs.write_text("tiers:\n  remove: {at_least: review, cost_false_positive: 1, cost_false_negative: 1}\n")
    with pytest.raises(ValueError, match="not a tier listed before it"):
        load_costs(str(costs))
    costs.write_text("tiers:\n  remove: {cost_false_positive: 1, cost_false_negative: 1, max_fpr: 0.01}\n")
    with pytest.raises(ValueError, match=r"tiers\.remove\.max_fpr: unknown field"):
        load_costs(str(costs))
    costs.write_text("tiers:\n  remove: {cost_false_positive: 1, cost_false_negative: 1}\nprevalence: 0.05\n")
    with pytest.raises(ValueError, match="prevalence: unknown field"):
        load_costs(str(costs))


def test_a_threshold_sits_in_the_middle_of_the_gap_not_on_the_last_item_it_flags():
    labels = np.array([False, False, True, True])
    scores = np.array([0.2, 0.9, 0.99, 0.999])
    point = operating_point("remove", labels, scores, TierCost(100, 1), 0.5, 1000)
    # Between the real 0.9 and the synthetic 0.99: logit midpoint of logit(0.9)=2.20 and logit(0.99)=4.60.
    assert point.threshold == pytest.approx(1 / (1 + np.exp(-(np.log(9) + np.log(99)) / 2)))
    assert 0.9 < point.threshold < 0.99 and point.recall == 1.0 and point.false_positive_rate == 0.0
    floor = operating_point("remove", labels, scores, TierCost(100, 1), 0.5, 1000, minimum=0.985)
    assert floor.threshold == 0.985  # never below the tier it must follow


def test_check_measures_the_chosen_thresholds_on_items_they_were_not_chosen_on(tmp_path):
    def write(path, labels, scores):
        path.write_text(
            "\n".join(
                json.dumps({"content_score": float(s), "fused_score": float(s), "label": int(y)})
                for s, y in zip(scores, labels)
            )
        )

    validation, test = tmp_path / "validation.jsonl", tmp_path / "test.jsonl"
    write(validation, *_scores(1))
    labels, scores = _scores(2)
    write(test, labels, scores)
    costs = tmp_path / "costs.yaml"
    costs.write_text("tiers:\n  remove: {score: content, cost_false_positive: 40, cost_false_negative: 10}\n")
    out = tmp_path / "thresholds.json"
    assert run(["--scores", str(validation), "--check", str(test), "--costs", str(costs), "--out", str(out)]) == 0
    (point,) = json.loads(out.read_text())["operating_points"]
    flagged = scores >= point["threshold"]
    assert point["check"]["false_positives"] == int((flagged & ~labels).sum())
    assert point["check"]["recall"] == pytest.approx((flagged & labels).sum() / labels.sum())
    assert point["check"]["real_items"] == int((~labels).sum())
