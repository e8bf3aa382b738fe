"""End to end: generated corpus -> features-only run -> training -> scored run -> warehouse.

Real media, real TensorFlow models trained by this repository's code, real Parquet and
DuckDB. The job runs in-process on the FnApiRunner (what DirectRunner uses for batch).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from PIL import Image

from models.examples import read_examples
from pipelines import batch, transparency
from schemas import TABLES, arrow_schema
from schemas.records import format_timestamp
from training import corpus
from training import train as train_cli
from warehouse.reader import EmbeddedReader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    corpus.generate_corpus(root / "train", count=24, seed=11)
    corpus.generate_corpus(root / "uploads", count=16, seed=12, corrupt=2)
    manifest = root / "uploads" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    for index, source in ((1, "user_report"), (2, "trusted_flagger")):  # reported before the run
        row = json.loads(lines[index])
        row["notice"] = {"source": source, "received_at": row["uploaded_at"]}
        lines[index] = json.dumps(row)
    hostile = [
        lines[0],  # the same upload twice: scored once, the copy skipped
        '{"content_id": "no-media", "media_uri": "media/absent.mp4", "account_id": "a", '
        '"uploaded_at": "2026-11-01T00:00:00Z"}',
        '{"content_id": "bad time", "media_uri": "x", "account_id": "a", "uploaded_at": "soon"}',
        "this is not json",
        "",
    ]
    manifest.write_text("\n".join(lines + hostile) + "\n")

    runner = [f"--runner={batch.LOCAL_RUNNER}"]
    features_wh = root / "train_wh"
    features_only = [
        "--input",
        str(root / "train" / "manifest.jsonl"),
        "--warehouse",
        str(features_wh),
        "--features_only",
    ]
    assert batch.run([*features_only, *runner]) == 0
    train_args = ["--warehouse", str(features_wh), "--labels", str(root / "train" / "labels.jsonl")]
    assert train_cli.run([*train_args, "--out", str(root / "models"), "--epochs", "2", "--quiet"]) == 0
    warehouse = root / "wh"
    args = ["--input", str(manifest), "--warehouse", str(warehouse), "--model_dir", str(root / "models")]
    args += ["--min_cell_count", "1", "--run_id", "first", *runner]
    assert batch.run(args) == 0
    labels = [json.loads(line) for line in (root / "uploads" / "labels.jsonl").read_text().splitlines()]
    return {"root": root, "warehouse": warehouse, "args": args, "labels": labels, "input_rows": len(lines) + 5}


def query(warehouse: Path, sql: str):
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def bank_first_upload(job, directory: Path, label: str) -> tuple[Path, str]:
    """A hash bank holding the first sampled frame hash of the first upload with one: its file
    and that upload's content id."""
    content_id, hashes = query(job["warehouse"], "select content_id, pdq_hashes from features "
                               "where len(pdq_hashes) > 0 order by content_id limit 1")[0]  # fmt: skip
    bank = directory / "bank.jsonl"
    bank.write_text(json.dumps({"pdq": hashes[0], "label": label}) + "\n")
    return bank, content_id


def test_a_features_only_run_writes_features_and_decides_nothing(job):
    """Training data (the corpus of the fixture's features-only run): every upload's features
    and nothing else; no score, decision, event or transparency figure of items nobody uploaded."""
    warehouse = job["root"] / "train_wh"
    uploads = len((job["root"] / "train" / "manifest.jsonl").read_text().splitlines())
    assert query(warehouse, "select count(distinct content_id) from features") == [(uploads,)]
    for table in ("media_scores", "enforcement_decisions", "enforcement_events", "transparency_aggregates",
                  "statements_of_reasons", "review_queue"):  # fmt: skip
        assert query(warehouse, f"select count(*) from {table}") == [(0,)], table


def test_every_good_upload_has_one_score_row_with_its_modalities(job):
    good = [row for row in job["labels"] if row["label"] != "corrupt"]
    rows = query(
        job["warehouse"],
        "select content_id, media_type, modalities_present, fused_score, "
        "coalesce(visual_abstained, true) and coalesce(audio_abstained, true) and metadata_abstained "
        "from media_scores",
    )
    assert sorted(r[0] for r in rows) == sorted(row["content_id"] for row in good)
    by_id = {r[0]: r for r in rows}
    for row in good:
        modalities, fused, all_abstained = by_id[row["content_id"]][2:]
        assert "metadata" in modalities
        assert ("visual" in modalities) == (row["visual_label"] is not None)
        assert ("audio" in modalities) == (row["audio_label"] is not None)
        # A fused score wherever some modality voted; none where every one abstained.
        assert (fused is None) == all_abstained and (fused is None or 0.0 <= fused <= 1.0)


def test_scores_name_the_models_that_made_them(job):
    rows = query(
        job["warehouse"],
        "select count(*) from media_scores where visual_score is not null and visual_model_version is null",
    )
    assert rows == [(0,)]
    versions = query(job["warehouse"], "select distinct metadata_model_name, metadata_model_version from media_scores")
    assert len(versions) == 1 and versions[0][0] == "metadata_detector"


def test_every_input_row_is_accounted_for(job):
    scored = query(job["warehouse"], "select count(*) from media_scores")[0][0]
    reasons = dict(
        ((d, s, e), n)
        for d, s, e, n in query(
            job["warehouse"], "select disposition, step, error_type, count(*) from dead_letter group by all"
        )
    )
    assert scored + sum(reasons.values()) == job["input_rows"]
    assert reasons[("skipped", "dedupe_events", "duplicate_content_id")] == 1
    assert reasons[("skipped", "parse_events", "blank_line")] == 1
    assert reasons[("dead_letter", "parse_events", "InvalidEvent")] == 2
    assert reasons[("dead_letter", "fetch_media", "MediaNotFound")] == 1
    corrupt_ids = {row["content_id"] for row in job["labels"] if row["label"] == "corrupt"}
    dead_ids = {
        r[0] for r in query(job["warehouse"], "select content_id from dead_letter where content_id is not null")
    }
    assert corrupt_ids <= dead_ids


NOT_WRITTEN_BY_AN_UPLOADS_RUN = (
    "appeals", "retraining_labels", "transparency_report", "reviews", "shadow_decisions", "shadow_scores",
    "signal_health", "model_releases", "statement_submissions", "message_deliveries",  # the streaming job's
)  # fmt: skip


def test_tables_match_their_schema_files(job):
    written = set()
    for table in TABLES:
        files = sorted((job["warehouse"] / table).glob("*.parquet"))
        if table in NOT_WRITTEN_BY_AN_UPLOADS_RUN:
            assert not files
        for file in files:  # a file only where the run wrote rows, each in its table's schema
            assert pq.read_metadata(file).num_rows > 0, file
            assert pq.read_schema(file).remove_metadata().equals(arrow_schema(table)), table
            written.add(table)
        # A table with no file yet is an empty view with the table's columns.
        columns = [r[0] for r in query(job["warehouse"], f"describe {table}")]
        assert columns == arrow_schema(table).names
    assert {"features", "media_scores", "enforcement_decisions", "enforcement_events", "decision_log", "dead_letter",
            "transparency_aggregates", "statements_of_reasons", "review_queue"} <= written  # fmt: skip


def test_every_decision_has_one_event_per_target(job):
    mismatched = query(
        job["warehouse"],
        """
        select d.decision_id, len(d.targets) as wanted, count(e.event_id) as got
        from enforcement_decisions d left join enforcement_events e using (decision_id)
        group by all having wanted <> got
        """,
    )
    assert mismatched == []
    decisions = query(job["warehouse"], "select count(*), count(distinct content_id) from enforcement_decisions")
    assert decisions[0][0] == decisions[0][1] == query(job["warehouse"], "select count(*) from media_scores")[0][0]


def test_every_restrictive_decision_has_a_statement_of_reasons_in_api_batches(job):
    restrictive = query(job["warehouse"], "select count(*) from enforcement_decisions where action in "
                        "('label', 'reduce_reach', 'remove')")[0][0]  # fmt: skip
    assert query(job["warehouse"], "select count(*) from statements_of_reasons")[0][0] == restrictive
    bodies = [
        json.loads(p.read_text()) for p in (job["warehouse"] / "statements_of_reasons_batches").glob("first-*.json")
    ]
    assert sum(len(b["statements"]) for b in bodies) == restrictive
    assert all(len(b["statements"]) <= 100 for b in bodies)


def test_reported_uploads_keep_their_notice_source_in_decisions_and_statements(job):
    rows = [json.loads(line) for line in (job["root"] / "uploads" / "manifest.jsonl").read_text().splitlines()[:-5]]
    expected = {r["content_id"]: r.get("notice", {}).get("source", "automated") for r in rows}
    decided = dict(query(job["warehouse"], "select content_id, detection_method from enforcement_decisions"))
    corrupt = {r["content_id"] for r in job["labels"] if r["label"] == "corrupt"}
    assert decided == {k: v for k, v in expected.items() if k not in corrupt}
    assert {"user_report", "trusted_flagger"} <= set(decided.values())
    sources = {"automated": "SOURCE_VOLUNTARY", "user_report": "SOURCE_ARTICLE_16",
               "trusted_flagger": "SOURCE_TRUSTED_FLAGGER"}  # fmt: skip
    for content_id, body in query(
        job["warehouse"],
        "select d.content_id, s.statement from statements_of_reasons s "
        "join enforcement_decisions d using (decision_id)",
    ):
        statement = json.loads(body)
        assert statement["source_type"] == sources[expected[content_id]]
        assert statement["automated_detection"] == ("Yes" if expected[content_id] == "automated" else "No")


def test_transparency_report_renders_every_compliance_query(job):
    from pipelines import transparency
    from tools import report

    runner = [a for a in job["args"] if a.startswith("--runner")]
    assert transparency.run(["--warehouse", str(job["warehouse"]), "--min_cell_count", "1", *runner]) == 0
    out = job["root"] / "transparency"
    assert report.run(["--warehouse", str(job["warehouse"]), "--out", str(out)]) == 0
    page = (out / "monitoring.html").read_text()  # the team's detail: every compliance query
    for title in report.TITLES.values():
        assert title in page
    assert (out / "actions_by_category.png").stat().st_size > 5_000
    month_total = ("select coalesce(sum(item_count), 0) from {} where measure = 'decisions' and breakdown = 'overall' "
                   "and period_type = 'month' and not suppressed")  # fmt: skip
    restrictive = query(job["warehouse"], "select count(distinct decision_id) from enforcement_decisions "
                        "where action != 'none'")[0][0]  # fmt: skip
    # One run so far: its own cells and the published ones agree, and count every decision.
    assert query(job["warehouse"], month_total.format("transparency_aggregates"))[0][0] == restrictive
    assert query(job["warehouse"], month_total.format("transparency_report"))[0][0] == restrictive
    decisions = report.run_queries(EmbeddedReader(str(job["warehouse"])))["actions_by_category"][1]
    assert sum(row[5] for row in decisions) == restrictive > 0


def test_training_examples_are_written_in_the_serving_layout(job):
    files = [str(p) for p in (job["warehouse"] / "features_tfrecord").glob("*.tfrecord.gz")]
    examples = read_examples(files)
    assert len(examples) == query(job["warehouse"], "select count(*) from features")[0][0]
    assert all("metadata" in e for e in examples)


def test_an_overturned_appeal_reverses_the_decision_everywhere_it_acted(job, capsys):
    decision_id, targets = query(
        job["warehouse"], "select decision_id, targets from enforcement_decisions where len(targets) > 0 limit 1"
    )[0]
    appeals = job["root"] / "appeals.jsonl"
    appealed = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    rows = [{"decision_id": decision_id, "outcome": "overturned", "decided_at": format_timestamp(appealed)},
            {"decision_id": "no-such-decision", "outcome": "upheld", "decided_at": format_timestamp(appealed)},
            # Decided tomorrow: a time that cannot be, dead-lettered, never counted.
            {"decision_id": decision_id, "outcome": "upheld",
             "decided_at": format_timestamp(appealed + dt.timedelta(days=1))}]  # fmt: skip
    appeals.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    args = [a if a != "first" else "appeals" for a in job["args"]] + ["--appeals", str(appeals)]
    assert batch.run(args) == 0
    assert "[balanced]" in capsys.readouterr().out  # appeal rows are reported apart from uploads
    reversed_targets = query(job["warehouse"], f"select target from enforcement_events where event_type = 'reverse' "
                             f"and decision_id = '{decision_id}'")  # fmt: skip
    assert sorted(t for (t,) in reversed_targets) == sorted(targets)
    assert query(job["warehouse"], f"select label from retraining_labels where decision_id = '{decision_id}'") == [
        ("real",)
    ]
    failures = query(job["warehouse"], "select step, error_type, reason from dead_letter where step like '%appeal%' "
                     "order by all")  # fmt: skip
    assert failures == [("apply_appeals", "LookupError", "unknown_decision"),
                        ("parse_appeals", "FutureTimestamp", "future_timestamp"),
                        ("parse_appeals", "InvalidAppeal", "invalid_appeal")]  # fmt: skip
    # The run's transparency cells count the appeal (min_cell_count is 1 here): one appeal,
    # overturned, in its month's cell.
    cells = query(job["warehouse"], "select period_start, item_count, overturned_count, overturn_rate "
                  "from transparency_aggregates where measure = 'appeals' and breakdown = 'overall' and period_type = 'month'")  # fmt: skip
    assert cells == [(appealed.date().replace(day=1), 1, 1, 1.0)]


def test_an_appeals_only_run_needs_no_uploads(job, capsys):
    (decision_id,) = query(
        job["warehouse"], "select decision_id from enforcement_decisions order by decision_id desc limit 1"
    )[0]
    appeals = job["root"] / "appeals_only.jsonl"
    appeals.write_text(
        json.dumps({"decision_id": decision_id, "outcome": "upheld", "decided_at": "2026-11-02T00:00:00Z"})
    )
    runner = [a for a in job["args"] if a.startswith("--runner")]
    args = ["--appeals", str(appeals), "--warehouse", str(job["warehouse"]), "--run_id", "appeals-only"]
    assert batch.run([*args, "--min_cell_count", "1", *runner]) == 0
    out = capsys.readouterr().out
    assert "rows read 0 = scored 0 + dead-lettered 0 + skipped 0  [balanced]" in out
    assert "run without uploads: no uploads scored, no new decisions" in out and "upheld        1" in out
    warehouse = job["warehouse"]
    assert not list((warehouse / "media_scores").glob("appeals-only-*"))
    assert not list((warehouse / "enforcement_decisions").glob("appeals-only-*"))
    outcome = query(warehouse, f"select outcome from read_parquet('{warehouse}/appeals/appeals-only-*.parquet')")
    assert outcome == [("upheld",)]
    cells = query(warehouse, "select item_count, overturned_count, overturn_rate from read_parquet("
                  f"'{warehouse}/transparency_aggregates/appeals-only-*.parquet') where period_type = 'month' "
                  "and breakdown = 'overall'")  # fmt: skip
    assert cells == [(1, 0, 0.0)]
    # The same file again: nothing is applied twice, the repeat is skipped with its reason.
    assert batch.run([*args[:-1], "appeals-again", "--min_cell_count", "1", *runner]) == 0
    assert "dedupe_appeals     duplicate_appeal" in capsys.readouterr().out
    assert not list((warehouse / "appeals").glob("appeals-again-*.parquet"))  # no appeal row written


def test_evaluation_report_covers_modalities_families_slices_and_held_out_families(job, capsys):
    from training import evaluate

    out = job["root"] / "report"
    args = ["--warehouse", str(job["root"] / "train_wh"), "--labels", str(job["root"] / "train" / "labels.jsonl")]
    args += ["--model_dir", str(job["root"] / "models"), "--out", str(out)]
    args += ["--leave_one_family_out", "--lofo_epochs", "1", "--lofo_modalities", "metadata"]
    assert evaluate.run(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["modalities"]) == {"visual", "audio", "metadata"}
    for modality in report["modalities"].values():
        assert {"auc", "eer", "average_precision", "at_fpr_1pct", "at_fpr_0_1pct"} <= set(modality["test"])
        assert sum(c["count"] for c in modality["by_container"].values()) == modality["test"]["count"]
    assert report["fused"]["fusion"].startswith("fusion_logistic@")
    assert set(report["fused"]["slices"]) == {"media_type", "country", "surface"}
    assert set(report["leave_one_family_out"]) == {"metadata"}
    assert all("held_out_items" in m for m in report["leave_one_family_out"]["metadata"].values())
    assert (out / "roc_det.png").stat().st_size > 10_000 and (out / "score_histograms.png").exists()
    scores = [json.loads(line) for line in (out / "test_scores.jsonl").read_text().splitlines()]
    assert len(scores) == report["fused"]["test"]["count"] and {s["label"] for s in scores} <= {0, 1}
    assert {"content_score", "fused_score", "source"} <= set(scores[0])
    validation = [json.loads(line) for line in (out / "validation_scores.jsonl").read_text().splitlines()]
    assert validation and not {s["content_id"] for s in validation} & {s["content_id"] for s in scores}
    assert set(report["fused"]["at_policy"]["thresholds"]) == {"remove", "review_content", "review_fused"}
    assert set(report["fused"]["by_source"]) == {"generator"}
    assert "fused (items)" in capsys.readouterr().out


def _compliance_figures(warehouse: Path, runner: list[str]) -> dict:
    """Every compliance query's answer and each decision, event and statement table's row
    counts, after the transparency job."""
    assert transparency.run(["--warehouse", str(warehouse), "--min_cell_count", "1", *runner]) == 0
    found = {}
    for path in sorted(Path("sql").glob("*.sql")):
        if path.stem != "dead_letter_summary":  # operational: what failed in every run, reruns included
            found[path.stem] = query(warehouse, path.read_text())
    counts = "select count(*), count(distinct {0}) from {1}"
    for table, key in (("enforcement_decisions", "decision_id"), ("enforcement_events", "event_id"),
                       ("statements_of_reasons", "sor_id")):  # fmt: skip
        found[table] = query(warehouse, counts.format(key, table))
    return found


def test_a_rerun_changes_no_event_id_strike_or_compliance_figure(job, tmp_path, capsys):
    # Two runs of the same uploads into a warehouse of their own (run ids sort, so "r2" starts
    # from "r1"'s strike ledger). A banked hash makes the first run remove one upload under the
    # bank's rule, so it earns a strike the rerun must not add again.
    bank, banked = bank_first_upload(job, tmp_path, "case-9")
    warehouse = tmp_path / "wh"
    args = [str(warehouse) if a == str(job["warehouse"]) else a for a in job["args"]] + ["--hash_bank", str(bank)]
    runner = [a for a in job["args"] if a.startswith("--runner")]

    def content_events(run_id):  # an account suspended once is not suspended again: left out
        files = warehouse / "enforcement_events" / f"{run_id}-*.parquet"
        return query(warehouse, f"select event_id from read_parquet('{files}') "
                     "where event_type = 'enforce' and action != 'suspend_account'")  # fmt: skip

    # The rerun reads every file from where it lies instead of carrying it (over --max_inline_bytes).
    for run_id, extra in (("r1", []), ("r2", ["--max_inline_bytes", "1"])):
        assert batch.run([a if a != "first" else run_id for a in args] + extra) == 0
        assert "[balanced]" in capsys.readouterr().out
        if run_id == "r1":
            matched = query(warehouse, "select s.content_id, s.hash_match, d.action, d.rule_id from media_scores s "
                            "join enforcement_decisions d using (content_id) where s.hash_match is not null")  # fmt: skip
            assert (banked, "case-9", "remove", "known-deepfake-remove") in matched
            once = _compliance_figures(warehouse, runner)
    features = {run_id: query(warehouse, "select content_id, visual_handcrafted, audio_handcrafted, "
                              "metadata_vector from read_parquet('" + str(warehouse / "features" / f"{run_id}-*.parquet")
                              + "') order by content_id") for run_id in ("r1", "r2")}  # fmt: skip
    assert features["r1"] and features["r1"] == features["r2"]
    first, second = content_events("r1"), content_events("r2")
    assert first, "the first run emitted no content event to compare"
    # The same ids again, each once: consumers de-duplicate the rerun.
    assert sorted(second) == sorted(first) and len(set(second)) == len(second)
    # The rerun started from the first run's strike ledger and added no strike twice.
    earning = query(warehouse, "select count(distinct decision_id) from enforcement_decisions "
                    "where action in ('remove', 'reduce_reach')")[0][0]  # fmt: skip
    assert earning >= 1
    current = query(warehouse, "select count(*), count(distinct strike_id) from strike_ledger_current")[0]
    assert current == (earning, earning)
    # Every compliance figure as the first run made it; every run's copies stay readable.
    assert once["statements_by_category"] and once["actions_by_category"]
    assert _compliance_figures(warehouse, runner) == once
    assert (
        query(warehouse, "select count(*) from enforcement_decisions_all_runs")[0][0]
        == 2 * (query(warehouse, "select count(*) from enforcement_decisions")[0][0])
    )


def test_two_runs_into_empty_warehouses_suspend_with_the_same_ids_and_a_statement(job, tmp_path):
    # A stricter copy of the shipped policy (one removal suspends) and a banked hash, so the
    # run removes an upload and suspends its account.
    policy = tmp_path / "strict.yaml"
    policy.write_text(
        Path("policies/synthetic_media_v1.yaml").read_text().replace("suspend_at: 3.0", "suspend_at: 1.0")
    )
    bank, _ = bank_first_upload(job, tmp_path, "case-3")
    ids = []
    for name in ("one", "two"):
        warehouse = str(tmp_path / name)
        args = [warehouse if a == str(job["warehouse"]) else a for a in job["args"]]
        assert batch.run([*args, "--policy", str(policy), "--hash_bank", str(bank), "--write_disposition",
                          "truncate"]) == 0  # fmt: skip
        ids.append(sorted(query(Path(warehouse), "select event_id from enforcement_events")))
        suspensions = query(Path(warehouse), "select d.decision_id, d.decided_at = d.uploaded_at, s.decision_id "
                            "from enforcement_decisions d left join statements_of_reasons s using (decision_id) "
                            "where d.action = 'suspend_account'")  # fmt: skip
        assert len(suspensions) >= 1
        for decision_id, at_event_time, statement_for in suspensions:
            assert at_event_time and statement_for == decision_id  # a decision of its own, with its statement
        events = query(Path(warehouse), "select count(*) from enforcement_events e join enforcement_decisions d "
                       "using (decision_id) where e.action = 'suspend_account'")  # fmt: skip
        assert events == [(len(suspensions),)]  # the event points at a decision that exists
    assert ids[0] == ids[1]


def _review_policy(directory: Path) -> Path:
    """The shipped policy with every hash-bank removal sampled for review (target 0.9, judged
    from one verdict) and every image routed to people."""
    import yaml

    document = yaml.safe_load(Path("policies/synthetic_media_v1.yaml").read_text())
    rules = document["rules"]
    rules[0]["automation"] = {"mode": "enforce", "sample_rate": 1.0, "target_precision": 0.9, "min_samples": 1}
    rules.insert(1, {"id": "route-images", "when": {"media_type_in": ["image"]}, "action": "human_review",
                     "category": "synthetic_media_undisclosed"})  # fmt: skip
    path = directory / "review_policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_the_review_loop_queues_applies_verdicts_once_and_downgrades_a_rule_reviewers_disagree_with(
    job, tmp_path, capsys
):
    from tools import automation

    bank, banked = bank_first_upload(job, tmp_path, "case-3")
    policy = _review_policy(tmp_path)
    warehouse = tmp_path / "wh"
    runner = [a for a in job["args"] if a.startswith("--runner")]
    base = [*runner, "--warehouse", str(warehouse), "--policy", str(policy), "--min_cell_count", "1"]
    uploads = ["--input", job["args"][1], "--model_dir", job["args"][5], "--hash_bank", str(bank)]
    assert batch.run([*base, *uploads, "--run_id", "r1"]) == 0
    capsys.readouterr()

    # The queue: every human_review decision (its proposal shown) and the banked removal (blind).
    queue = {r[0]: r[1:] for r in query(warehouse, "select decision_id, queue, blind, shown_action, content_id, "
                                         "media_type, contact_sheet, evidence from review_queue")}  # fmt: skip
    routed = {
        d for (d,) in query(warehouse, "select decision_id from enforcement_decisions where action = 'human_review'")
    }
    assert routed and {d for d, row in queue.items() if row[0] == "routed"} == routed
    assert all(not row[1] and row[2] == "human_review" for row in queue.values() if row[0] == "routed")
    removal = query(warehouse, f"select decision_id from enforcement_decisions where content_id = '{banked}'")[0][0]
    assert queue[removal][:3] == ("quality_sample", True, None)
    sheets = 0
    for _, _, _, _, media_type, sheet, evidence in queue.values():
        assert set(json.loads(evidence)) >= {"modalities", "provenance", "hash_match", "fused_score"}
        if sheet:
            sheets += 1
            assert media_type in ("image", "video") and Path(sheet).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sheets >= 2  # the banked video and the routed images
    logged = query(warehouse, "select count(*) from decision_log where change = 'automated_decision'")[0][0]
    assert logged == query(warehouse, "select count(*) from enforcement_decisions")[0][0]

    # Verdicts: the reviewer disagrees with the removal, removes a routed image, and three rows fail.
    image = next(d for d, row in queue.items() if row[0] == "routed" and row[4] == "image")
    verdict = {"review_id": "rv-2", "decision_id": image, "violating": True, "category": "synthetic_media_undisclosed",
               "action": "remove", "reviewer": "rev-1", "decided_at": "2026-11-20T10:00:00Z"}  # fmt: skip
    rows = [
        {
            **verdict,
            "review_id": "rv-1",
            "decision_id": removal,
            "violating": False,
            "category": None,
            "action": "none",
        },
        verdict,
        verdict,  # sent twice: applied once
        {**verdict, "review_id": "rv-3", "decision_id": "no-such-decision"},
        {**verdict, "review_id": "rv-4", "reviewer": "jane@example.com"},
    ]
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert batch.run([*base, "--reviews", str(verdicts), "--run_id", "r2"]) == 0
    out = capsys.readouterr().out
    assert "verdicts read 5 = applied 2 + dead-lettered or skipped 3" in out and "[balanced]" in out
    finals = dict(query(warehouse, "select supersedes, action from enforcement_decisions where supersedes is not null"))
    assert finals == {removal: "none", image: "remove"}
    removal_targets = len(query(warehouse, f"select * from enforcement_events where decision_id = '{removal}' "
                                "and event_type = 'enforce'"))  # fmt: skip
    reversed_targets = query(warehouse, f"select count(*) from enforcement_events where decision_id = '{removal}' "
                             "and event_type = 'reverse'")[0][0]  # fmt: skip
    assert removal_targets == reversed_targets > 0
    image_final = next(iter(query(warehouse, "select decision_id, targets from enforcement_decisions "
                                  f"where supersedes = '{image}'")))  # fmt: skip
    image_events = query(warehouse, f"select target from enforcement_events where decision_id = '{image_final[0]}'")
    assert sorted(t for (t,) in image_events) == sorted(image_final[1]) and "content_store" in image_final[1]
    assert sorted(query(warehouse, "select label, source from retraining_labels")) == [
        ("real", "review_verdict"), ("synthetic", "review_verdict")]  # fmt: skip
    changes = sorted(c for (c,) in query(warehouse, "select change from decision_log where actor_type = 'reviewer'"))
    assert changes == ["reversed_by_review", "review_verdict", "review_verdict"]
    failed = query(warehouse, "select step, reason from dead_letter where run_id = 'r2' order by 1")
    assert failed == [("apply_verdicts", "unknown_decision"), ("dedupe_verdicts", "duplicate_verdict"),
                      ("parse_verdicts", "invalid_verdict")]  # fmt: skip
    assert query(warehouse, "select automated_decision from enforcement_decisions where supersedes is not null "
                 "order by action") == [("not",), ("partially",)]  # fmt: skip

    # One blind verdict against the removal rule: its lower bound (0) is under its target, so
    # the next run sends the banked upload to people instead of removing it.
    assert automation.run(["--warehouse", str(warehouse), "--policy", str(policy)]) == 0
    table = capsys.readouterr().out
    assert "known-deepfake-remove" in table and "sampled  (agreement 0/1" in table
    assert batch.run([*base, *uploads, "--run_id", "r3"]) == 0
    assert "automation: known-deepfake-remove runs sampled, not enforce" in capsys.readouterr().out
    decided = query(warehouse, "select action, proposed_action, targets from read_parquet("
                    f"'{warehouse}/enforcement_decisions/r3-*.parquet') where content_id = '{banked}'")  # fmt: skip
    assert decided == [("human_review", "remove", ["review_queue"])]
    queued = query(warehouse, f"select queue, blind from read_parquet('{warehouse}/review_queue/r3-*.parquet') "
                   f"where content_id = '{banked}'")  # fmt: skip
    assert queued == [("sampled_rule", True)]
    removed_again = query(warehouse, "select count(*) from read_parquet("
                          f"'{warehouse}/enforcement_events/r3-*.parquet') where content_id = '{banked}' "
                          "and target = 'content_store'")  # fmt: skip
    assert removed_again == [(0,)]

    # The bank learnt from the verdicts: the image the reviewer removed, re-encoded and posted
    # by another account, matches it (the rule it lands on is sampled by now: to people, with
    # removal proposed); the removal the reviewer reversed is out of the bank.
    reposts = tmp_path / "reposts"
    reposts.mkdir()
    rows = []
    for name, decision_id in (("confirmed", image), ("reversed", removal)):
        (content_id,) = query(
            warehouse, f"select content_id from enforcement_decisions where decision_id = '{decision_id}'"
        )[0]
        source = next(json.loads(line) for line in Path(job["args"][1]).read_text().splitlines()
                      if line.startswith("{") and json.loads(line).get("content_id") == content_id)  # fmt: skip
        media = Path(job["args"][1]).parent / source["media_uri"]
        if name == "confirmed":  # the routed image: smaller and re-compressed
            picture = Image.open(media).convert("RGB")
            picture.resize((picture.width * 9 // 10, picture.height * 9 // 10)).save(
                reposts / f"{name}.jpg", quality=70
            )
            uri = f"{name}.jpg"
        else:  # the banked upload the reviewer reversed: posted again as it was
            uri = f"{name}{media.suffix}"
            (reposts / uri).write_bytes(media.read_bytes())
        rows.append({"content_id": f"repost-{name}", "media_uri": uri, "account_id": "another-account",
                     "uploaded_at": "2026-11-21T09:00:00Z"})  # fmt: skip
    (reposts / "manifest.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    repost_args = ["--input", str(reposts / "manifest.jsonl"), "--model_dir", job["args"][5], "--run_id", "r4"]
    assert batch.run([*base, *repost_args]) == 0
    matched = dict(query(warehouse, "select content_id, hash_match from media_scores where content_id like 'repost-%'"))
    final_image = query(warehouse, f"select decision_id from enforcement_decisions where supersedes = '{image}'")[0][0]
    assert matched == {"repost-confirmed": f"banked:reviewer_removal:{final_image}", "repost-reversed": None}
    (rule,) = query(warehouse, "select rule_id from enforcement_decisions where content_id = 'repost-confirmed'")[0]
    assert rule == "known-deepfake-remove"


def test_a_simulation_replays_the_live_policy_as_the_job_decided_and_compares_a_candidate(job, tmp_path):
    import html

    import yaml

    from tools import simulate

    from .pages import assert_readable

    document = yaml.safe_load(Path("policies/synthetic_media_v1.yaml").read_text())
    document["version"] = "candidate"
    # Stricter: every upload reaches people first (whatever this fixture's small models scored).
    document["rules"].insert(0, {"id": "review-everything", "when": {"media_type_in": ["video", "image", "audio"]},
                                 "action": "human_review", "category": "synthetic_media_undisclosed"})  # fmt: skip
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(document, sort_keys=False))
    out = tmp_path / "simulation"
    assert simulate.run(["--warehouse", str(job["warehouse"]), "--candidate", str(candidate), "--out", str(out)]) == 0
    result = json.loads((out / "simulation.json").read_text())
    stored = query(job["warehouse"], "select count(distinct content_id) from media_scores")[0][0]
    assert result["items"] == stored
    for dimension in ("action", "category"):
        assert sum(r["baseline"] for r in result["volumes"][dimension]) == stored
        assert sum(r["candidate"] for r in result["volumes"][dimension]) == stored
    # Replayed under the live policy, each stored upload gets the action the job gave it.
    live = dict(query(job["warehouse"], "select action, count(*) from enforcement_decisions where supersedes is null "
                      "and action != 'suspend_account' group by 1"))  # fmt: skip
    assert {r["value"]: r["baseline"] for r in result["volumes"]["action"] if r["baseline"]} == live
    stricter = {r["value"]: r["change"] for r in result["volumes"]["action"]}
    assert stricter["human_review"] > 0 and stricter.get("none", 0) <= 0
    # Every upload not already reviewed changes (one already reviewed under another category too).
    assert result["changed_items"] == len(result["changed"]) >= stored - live.get("human_review", 0) > 0
    assert all(c["baseline_action"] != c["candidate_action"] for c in result["changed"])
    assert set(result["quality"]["baseline"]) >= {"remove", "human_review", "any_restriction"}
    assert result["review_load"]["days"] and (out / "simulation.html").read_text().count("data:image/png") >= 1
    # The page reads at 1280 px; the policy's capacity (2000 a day) dwarfs a few uploads' load, so
    # the chart keeps the load's scale and the page gives the capacity in words.
    assert_readable(out / "simulation.html")
    page = html.unescape((out / "simulation.html").read_text())
    assert '{"' not in page and "Reviewer capacity: 2,000 items a day, not drawn" in page

    # The candidate run in shadow beside the live policy on the same uploads: recorded, never acted on.
    args = [a if a != "first" else "shadow" for a in job["args"]] + ["--shadow_policy", str(candidate)]
    assert batch.run(args) == 0
    shadowed = query(job["warehouse"], "select count(*), count(distinct policy_version) from shadow_decisions")
    assert shadowed == [(stored, 1)]
    acted_on = query(job["warehouse"], "select count(*) from enforcement_events where decision_id in "
                     "(select decision_id from shadow_decisions) union all select count(*) from review_queue where "
                     "decision_id in (select decision_id from shadow_decisions)")  # fmt: skip
    assert acted_on == [(0,), (0,)]
    live_out = tmp_path / "shadow"
    assert simulate.run(["--warehouse", str(job["warehouse"]), "--candidate", str(candidate), "--shadow",
                         "--out", str(live_out)]) == 0  # fmt: skip
    on_traffic = json.loads((live_out / "simulation.json").read_text())
    assert on_traffic["items"] == stored and on_traffic["changed_items"] == result["changed_items"]
    assert on_traffic["volumes"]["action"] == result["volumes"]["action"]  # replay and shadow agree
