"""Signal health on a warehouse whose second week drifted: the drift is found, named and written."""

from __future__ import annotations

import datetime as dt
import html
import json

import duckdb
import numpy as np
import pytest

from models.visual_layout import VISUAL
from tools import signal_health
from warehouse.embedded import write_catalog

from .conftest import seed_table
from .pages import assert_readable

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    """Two weeks of 300 uploads each; in the second, visual scores rise, one hand-made signal
    shifts, corrupt media triples and the removal rule's appeals are mostly overturned; reviewers
    agree with 15 of the review rule's 20 blind verdicts."""
    warehouse = tmp_path_factory.mktemp("health")
    rng = np.random.default_rng(0)
    scores, features, decisions, letters, labels, appeals = [], [], [], [], [], []
    reviews = [{"review_id": f"r{i}", "rule_id": "review-content", "blind": True, "agrees": i < 15,
                "reviewed_at": T0 + dt.timedelta(days=8)} for i in range(20)]  # fmt: skip
    drifting = VISUAL.signal_names().index(VISUAL.signal_names()[7])
    for week in (0, 1):
        for i in range(300):
            content_id, at = f"w{week}-{i}", T0 + dt.timedelta(days=7 * week, hours=i * 0.5)
            synthetic = rng.random() < 0.3
            visual = float(np.clip(rng.beta(6 if synthetic else 1.5, 2 if synthetic else 6) + 0.25 * week, 0, 1))
            audio = float(rng.beta(2, 5))
            scores.append({"content_id": content_id, "uploaded_at": at, "scored_at": at, "visual_score": visual,
                           "visual_abstained": False, "audio_score": audio, "metadata_score": float(rng.random()),
                           "content_score": visual, "fused_score": visual,
                           "hash_match": f"banked:reviewer_removal:d{i}" if week == 1 and i < 30 else None,
                           "evasion_match": "suspended:a:d" if i == 7 else None})  # fmt: skip
            signals = rng.normal(0, 1, len(VISUAL.signal_names()))
            signals[drifting] += 2.0 * week
            features.append({"content_id": content_id, "visual_handcrafted": signals.tolist()})
            rule = "remove-content-certain" if visual > 0.99 else "review-content" if visual > 0.85 else "no-action"
            decisions.append({"decision_id": f"d-{content_id}", "content_id": content_id, "rule_id": rule,
                              "action": {"no-action": "none", "review-content": "human_review"}.get(rule, "remove"),
                              "uploaded_at": at, "decided_at": at})  # fmt: skip
            labels.append({"content_id": content_id, "decision_id": f"d-{content_id}",
                           "label": "synthetic" if synthetic else "real", "labelled_at": at})  # fmt: skip
        for i in range(10 if week == 0 else 30):
            letters.append({"reason": "corrupt_media", "disposition": "dead_letter",
                            "failed_at": T0 + dt.timedelta(days=7 * week, hours=i)})  # fmt: skip
        for i in range(12):
            appeals.append({"appeal_id": f"a{week}-{i}", "decision_id": f"d-w{week}-{i}",
                            "outcome": "overturned" if week == 1 and i < 9 else "upheld",
                            "appeal_decided_at": T0 + dt.timedelta(days=7 * week + 1)})  # fmt: skip
    # Week 1: one campaign of 12 uploads (found twice, smaller first, as a streaming job's panes
    # find it); the bank grows by 5 entries in week 0 and by 8 in week 1, when 2 are taken out.
    campaigns = [{"campaign_id": "c1", "member_count": n, "first_seen": T0 + dt.timedelta(days=8),
                  "found_at": T0 + dt.timedelta(days=8, hours=n)} for n in (9, 12)]  # fmt: skip
    bank = [{"change_id": f"b{week}-{i}", "content_id": f"w{week}-{i}", "change": "add", "reason": "reviewer_removal",
             "decision_id": f"d-w{week}-{i}", "changed_at": T0 + dt.timedelta(days=7 * week + 1), "source": "decisions"}
            for week, count in ((0, 5), (1, 8)) for i in range(count)]  # fmt: skip
    bank += [dict(bank[i], change_id=f"x{i}", change="remove", reason="appeal_overturned",
                  changed_at=T0 + dt.timedelta(days=9)) for i in (0, 1)]  # fmt: skip
    for table, rows in (("media_scores", scores), ("features", features), ("enforcement_decisions", decisions),
                        ("dead_letter", letters), ("retraining_labels", labels), ("appeals", appeals),
                        ("reviews", reviews), ("campaigns", campaigns), ("bank_changes", bank)):  # fmt: skip
        seed_table(warehouse, table, rows)
    write_catalog(str(warehouse))
    out = warehouse / "report"
    assert signal_health.run(["--warehouse", str(warehouse), "--period_type", "week", "--end", "2026-11-16",
                              "--out", str(out)]) == 0  # fmt: skip
    return warehouse, json.loads((out / "signal_health.json").read_text()), out


def test_a_score_that_moved_is_an_alert_and_one_that_did_not_is_not(drifted):
    _, report, _ = drifted
    checks = {(c["check_name"], c["subject"]): c for c in report["checks"]}
    assert checks["score_psi", "visual_score"]["status"] == "alert"
    assert checks["score_psi", "audio_score"]["status"] == "ok"
    assert report["scores"]["visual_score"]["ks_p_value"] < 1e-6 < report["scores"]["audio_score"]["ks_p_value"]


def test_the_signal_that_drifted_is_named_first(drifted):
    _, report, _ = drifted
    top = report["signals"]["visual"][0]
    assert top["signal"] == VISUAL.signal_names()[7] and top["psi"] > 0.25
    assert report["signals"]["audio"] == []  # no audio signals stored: nothing to judge, nothing invented


def test_dead_letters_rules_and_appeals_are_judged(drifted):
    _, report, _ = drifted
    checks = {(c["check_name"], c["subject"]): c for c in report["checks"]}
    assert checks["dead_letter_rate_change", "corrupt_media"]["status"] in ("warn", "alert")
    by_rule = report["appeal_overturn_rate"].values()
    assert sum(r["appeals"] for r in by_rule) == 12  # the period's appeals, per rule of the decision appealed
    assert sum(r["appeals"] * r["rate"] for r in by_rule) == pytest.approx(9)
    assert any(c["check_name"] == "rule_volume_share_change" for c in report["checks"])


def test_bank_matches_campaigns_evasion_and_the_banks_growth_are_reported_per_week(drifted):
    _, report, _ = drifted
    matching = report["matching"]
    assert matching["period"] == {"uploads": 300, "bank_match": 30, "evasion_link": 1, "campaign_member": 12,
                                  "campaigns": 1, "bank_added": 8, "bank_removed": 2}  # fmt: skip
    assert matching["reference"]["bank_match"] == 0 and matching["reference"]["bank_added"] == 5
    assert matching["bank_entries"] == 11  # 13 added, 2 taken out
    checks = {(c["check_name"], c["subject"]): c for c in report["checks"]}
    assert checks["match_rate_change", "bank_match"]["status"] == "alert"  # 0% -> 10% of uploads
    assert checks["match_rate_change", "campaign_member"]["status"] == "warn"  # 0% -> 4%
    assert checks["match_rate_change", "evasion_link"]["status"] == "ok"
    assert checks["bank_reversal_share", "bank"]["value"] == pytest.approx(0.2)
    assert checks["bank_reversal_share", "bank"]["status"] == "alert"


def test_drift_brings_recomputed_thresholds_as_a_recommendation_and_rows_in_the_table(drifted):
    warehouse, report, out = drifted
    recommendation = report["threshold_recommendation"]
    assert "visual_score" in recommendation["drifted"] and recommendation["labelled_items"] == 300
    assert {p["tier"] for p in recommendation["operating_points"]} == {"review_fused", "review_content", "remove"}
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        written = con.sql("select count(*), count(distinct check_name) from signal_health").fetchall()
    assert written == [(len(report["checks"]), len({c["check_name"] for c in report["checks"]}))]
    assert "data:image/png" in (out / "signal_health.html").read_text()


def test_the_page_reads_at_1280_px_and_says_how_each_check_is_judged(drifted):
    _, report, out = drifted
    assert_readable(out / "signal_health.html")
    page = html.unescape((out / "signal_health.html").read_text())
    assert '{"' not in page  # figures in tables and sentences, not JSON
    assert "Warn at PSI ≥ 0.1 with KS p < 0.05; alert at PSI ≥ 0.25 with KS p < 0.01" in page
    assert "Warn at ≥ 2 points; alert at ≥ 5 points" in page and "Warn at ≥ 10%; alert at ≥ 20%" in page
    # A PSI past the warning level is ok only when the KS test does not confirm it, and the row says so.
    unconfirmed = [c for c in report["checks"] if c["check_name"] in ("score_psi", "signal_psi")
                   and c["status"] == "ok" and c["value"] >= 0.1]  # fmt: skip
    assert unconfirmed and all("the KS test does not confirm a change" in c["detail"] for c in unconfirmed)
    assert all(c["detail"] in page for c in unconfirmed)
    assert "<td>review-content</td><td>20</td><td>75.0%</td>" in page  # reviewers' agreement, as a share


def test_a_large_psi_on_a_small_sample_is_ok_unless_the_ks_test_confirms_it():
    rng = np.random.default_rng(1)
    index, _, p_value, status = signal_health.drift(rng.normal(size=30), rng.normal(size=30))
    assert index >= 0.25 and p_value >= 0.05 and status == "ok"  # the same distribution: chance, not drift
    assert signal_health.drift_status("score_psi", 1.92, 0.3) == (
        "ok", "ok although PSI ≥ 0.1: KS p ≥ 0.05, the KS test does not confirm a change")  # fmt: skip
    assert signal_health.drift_status("score_psi", 1.92, 0.02)[0] == "warn"
    assert signal_health.drift_status("score_psi", 1.92, 0.001)[0] == "alert"


def test_the_streaming_job_exports_score_deciles_and_dead_letter_reasons_as_metrics():
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    from schemas.records import DeadLetter
    from transforms.health import ExportHealthMetrics

    from .test_review import _item

    letter = DeadLetter("fetch_media", "dead_letter", "c9", "media_not_found", "E", "gone", "{}", T0)
    pipeline = beam.Pipeline(runner="apache_beam.runners.portability.fn_api_runner.FnApiRunner")
    scores = pipeline | "Scores" >> beam.Create([_item(0.95), _item(0.91), _item(0.12)])
    letters = pipeline | "Letters" >> beam.Create([letter])
    {"scores": scores, "dead_letters": letters} | ExportHealthMetrics()
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query(MetricsFilter())["counters"]}
    assert counters["visual_score_decile_9"] == 2 and counters["visual_score_decile_1"] == 1
    assert counters["dead_letter_media_not_found"] == 1
    (visual,) = [
        d for d in result.metrics().query(MetricsFilter())["distributions"] if d.key.metric.name == "visual_score"
    ]
    assert visual.committed.count == 3 and visual.committed.max == 950
