"""The training set from the warehouse (training/warehouse_set.py): people's newest label per
upload joined to its features, split by time, every label row accounted for."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from models.signature import FEATURE_VERSION
from training.splits import item_split
from training.warehouse_set import HumanLabel, SetSpec, Upload, assemble, modality_labels, run

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
SPEC = SetSpec(T0, T0 + dt.timedelta(days=28), T0 + dt.timedelta(days=21), 7, FEATURE_VERSION)


def _label(content_id: str, label: str, source: str, days: float, decision: str = "d") -> HumanLabel:
    return HumanLabel(content_id, label, source, T0 + dt.timedelta(days=days), decision)


def _upload(content_id: str, days: float, modalities=("visual", "metadata"), media_type="image") -> Upload:
    return Upload(content_id, media_type, T0 + dt.timedelta(days=days), modalities)


def test_the_newest_label_stands_and_an_appeal_wins_a_tie_with_a_verdict():
    verdict = _label("c1", "synthetic", "review_verdict", 3, "v")
    appeal = _label("c1", "real", "appeal_overturned", 3, "a")
    row, left_out = assemble([appeal, verdict], [_upload("c1", 1)], [FEATURE_VERSION], SPEC)
    assert (row["label"], row["label_source"], row["split"] in ("train", "validation")) == (
        "real",
        "appeal_overturned",
        True,
    )
    assert [(s["decision_id"], s["reason"]) for s in left_out] == [("v", "superseded_label")]


@pytest.mark.parametrize(("uploads", "versions", "reason"), [
    ([], [FEATURE_VERSION], "not_scored_here"),
    ([_upload("c1", 30)], [FEATURE_VERSION], "outside_period"),
    ([_upload("c1", 1)], ["f1"], "no_features"),
])  # fmt: skip
def test_a_label_that_cannot_train_is_skipped_with_its_reason(uploads, versions, reason):
    row, left_out = assemble([_label("c1", "synthetic", "review_verdict", 2)], uploads, versions, SPEC)
    assert row is None and [s["reason"] for s in left_out] == [reason]


def test_a_persons_label_of_a_curated_item_is_skipped_so_the_trainer_never_reads_two_labels_of_it():
    import dataclasses

    spec = dataclasses.replace(SPEC, curated=frozenset({"c1"}))
    row, left_out = assemble(
        [_label("c1", "real", "appeal_overturned", 2)], [_upload("c1", 1)], [FEATURE_VERSION], spec
    )
    assert row is None and [s["reason"] for s in left_out] == ["curated_item"]


def test_uploads_from_test_from_on_are_the_test_split_and_the_trainer_keeps_it():
    row, _ = assemble([_label("c9", "synthetic", "review_verdict", 23)], [_upload("c9", 22)], [FEATURE_VERSION], SPEC)
    assert row["split"] == "test" and item_split(row, seed=1) == "test"


def test_a_persons_label_trains_only_the_detectors_it_speaks_for():
    assert modality_labels("synthetic", _upload("a", 1, ("visual", "metadata"))) == {
        "visual_label": 1, "audio_label": None, "metadata_label": 1}  # fmt: skip
    assert modality_labels("real", _upload("b", 1, ("audio", "metadata"), "audio"))["audio_label"] == 0
    # A video with sound: "synthetic" does not say which track, so neither content detector learns from it.
    both = modality_labels("synthetic", _upload("c", 1, ("visual", "audio", "metadata"), "video"))
    assert (both["visual_label"], both["audio_label"], both["metadata_label"]) == (None, None, 1)


def test_the_job_builds_the_set_from_a_warehouse_and_accounts_for_every_label(tmp_path):
    from warehouse.embedded import write_catalog

    from .conftest import seed_table

    warehouse = tmp_path / "wh"
    at = [T0 + dt.timedelta(days=d) for d in range(30)]
    scores = [{"content_id": f"u{n}", "media_type": "image", "uploaded_at": at[n], "scored_at": at[n],
               "modalities_present": ["visual", "metadata"]} for n in range(26)]  # fmt: skip
    features = [{"content_id": f"u{n}", "media_type": "image", "feature_version": FEATURE_VERSION}
                for n in range(26) if n != 5]  # fmt: skip
    labels = [{"content_id": f"u{n}", "decision_id": f"v{n}", "label": "synthetic" if n % 2 else "real",
               "source": "review_verdict", "labelled_at": at[n] + dt.timedelta(hours=3)} for n in range(26)]  # fmt: skip
    labels.append({"content_id": "u3", "decision_id": "appeal-3", "label": "real", "source": "appeal_overturned",
                   "labelled_at": at[9]})  # fmt: skip
    labels.append({"content_id": "ghost", "decision_id": "v-ghost", "label": "real", "source": "review_verdict",
                   "labelled_at": at[2]})  # fmt: skip
    appeals = [{"appeal_id": "a8", "decision_id": "d8", "content_id": "u8", "outcome": "upheld", "action": "remove",
                "appeal_decided_at": at[12]},
               {"appeal_id": "a9", "decision_id": "d9", "content_id": "u9", "outcome": "upheld", "action": "none",
                "appeal_decided_at": at[12]}]  # fmt: skip
    reviews = [{"review_id": "r1", "verdict_decision_id": "v1", "blind": True},
               {"review_id": "r2", "verdict_decision_id": "v2", "blind": False}]  # fmt: skip
    for table, rows in (("media_scores", scores), ("features", features), ("retraining_labels", labels),
                        ("appeals", appeals), ("reviews", reviews)):  # fmt: skip
        seed_table(warehouse, table, rows)
    write_catalog(str(warehouse))
    out = tmp_path / "set"
    assert run(["--warehouse", str(warehouse), "--start", "2026-11-02", "--end", "2026-11-23",
                "--test_from", "2026-11-16", "--out", str(out)]) == 0  # fmt: skip

    rows = {r["content_id"]: r for r in map(json.loads, (out / "labels.jsonl").read_text().splitlines())}
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    summary = json.loads((out / "training_set.json").read_text())
    # u0-u20 uploaded in the period; u5 has no features; u21-u25 after it; ghost never scored here.
    assert sorted(rows) == sorted(f"u{n}" for n in range(21) if n != 5)
    assert rows["u3"]["label"] == "real" and rows["u3"]["label_source"] == "appeal_overturned"
    assert rows["u8"]["label_source"] == "appeal_upheld" and rows["u8"]["label"] == "synthetic"
    assert rows["u9"]["label_source"] == "review_verdict"  # an appeal against no measure says nothing
    assert rows["u1"]["reviewed_blind"] and not rows["u2"]["reviewed_blind"]
    assert {r["split"] for n, r in rows.items() if int(n[1:]) >= 14} == {"test"}
    assert {r["split"] for n, r in rows.items() if int(n[1:]) < 14} <= {"train", "validation"}
    reasons = sorted(s["reason"] for s in skipped)
    assert reasons == sorted(["superseded_label"] * 2 + ["no_features"] + ["outside_period"] * 5 + ["not_scored_here"])
    assert summary["labels_read"] == len(labels) + 1 == summary["items"] + len(skipped)  # + the upheld appeal
