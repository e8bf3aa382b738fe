"""training.compare_reports: two evaluation reports side by side."""

from __future__ import annotations

import json

from training.compare_reports import run


def _metrics(auc: float, recall: float, count: int = 100) -> dict:
    return {"count": count, "positives": 40, "auc": auc, "eer": 1 - auc, "average_precision": auc,
            "at_fpr_1pct": {"recall": recall}, "at_fpr_0_1pct": {"recall": recall / 2}}  # fmt: skip


def _report(auc: float) -> dict:
    at_policy = {"thresholds": {"remove": 0.98, "review_content": 0.86, "review_fused": 0.9},
                 "content": {"remove": {"recall": 0.7, "real_flagged": 0}, "review_content": {"recall": 0.8}},
                 "fused": {"review_fused": {"recall": 0.85, "real_flagged": 1}}}  # fmt: skip
    return {
        "policy": "policies/synthetic_media_v1.yaml",
        "modalities": {
            "visual": {"test": _metrics(auc, 0.7), "by_source": {"photos": {"count": 5, "mean_score_real": 0.02}}},
            "audio": {"test": _metrics(0.99, 0.9)},
        },
        "fused": {"test": _metrics(0.98, 0.85), "content": _metrics(0.97, 0.8), "at_policy": at_policy},
    }


def test_two_reports_are_set_side_by_side_with_their_changes(tmp_path, capsys):
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(_report(0.95)))
    after.write_text(json.dumps(_report(0.97)))
    assert run([str(before), str(after), "--names", "f9", "f10"]) == 0
    out = capsys.readouterr().out
    assert "Test split, f9 -> f10" in out
    visual = next(line for line in out.splitlines() if line.startswith("| visual |"))
    assert "0.950 -> 0.970 (+0.020)" in visual and "| 100 |" in visual
    assert "0.990 -> 0.990 (+0.000)" in next(line for line in out.splitlines() if line.startswith("| audio |"))
    photos = next(line for line in out.splitlines() if line.startswith("| photos |"))  # a one-class slice
    assert "0.020 -> 0.020 (+0.000)" in photos
    assert "| remove (0.98) | recall 0.700, real flagged 0 | recall 0.700, real flagged 0 |" in out
