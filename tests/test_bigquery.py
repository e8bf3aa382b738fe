"""BigQuery as the warehouse, against a real BigQuery-API server on loopback (local-bigquery,
installed by `make bigquery-emulator`; started here and stopped afterwards).

The same uploads and appeals go through the batch job into the embedded warehouse (from files)
and into BigQuery (from BigQuery tables); every compliance query must answer the same on both.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from models.examples import read_parquet_examples
from pipelines import batch, transparency
from schemas import INPUT_TABLES, TABLES, bigquery_schema
from schemas.bigquery import compliance_views, physical_table, table_layouts, table_resource, view_queries
from tools import report, sample_appeals
from training import corpus
from training.train import read_features
from warehouse.bigquery import STREAMING_INSERTS, BigQueryLocation, create_tables, query_arrow
from warehouse.embedded import table_files
from warehouse.reader import BigQueryReader, EmbeddedReader
from warehouse.sinks import BigQueryWarehouse

from .conftest import batch_pipeline

pytestmark = pytest.mark.slow
PROJECT = "t-and-s"
RUNNER = f"--runner={batch.LOCAL_RUNNER}"
SQL = sorted(Path("sql").glob("*.sql"))


@pytest.fixture(scope="module")
def endpoint(bigquery_endpoint):
    return bigquery_endpoint


def _location(endpoint: str, dataset: str) -> BigQueryLocation:
    return BigQueryLocation(PROJECT, dataset, endpoint)


def _load_rows(location: BigQueryLocation, table: str, rows: list[dict], schema: list[dict]) -> str:
    """Loads rows into a table made here (an input of the job, as a producer would write it)."""
    from google.cloud import bigquery

    with location.client() as client:
        client.create_dataset(location.dataset, exists_ok=True)
        job_config = bigquery.LoadJobConfig(
            source_format="NEWLINE_DELIMITED_JSON",
            schema=[bigquery.SchemaField.from_api_repr(f) for f in schema],
        )
        client.load_table_from_json(rows, location.table_id(table), job_config=job_config).result()
    return f"bq://{location.table_id(table)}"


def _rounded(value):
    """One form for a figure from either engine (DuckDB sums integers to a DECIMAL)."""
    if isinstance(value, decimal.Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    return value


def _figures(reader) -> dict[str, list[tuple]]:
    """Every compliance query's rows, as the analyst reads them (through the compliance views)."""
    figures = {}
    for path in SQL:
        table = reader.query(path.read_text(), compliance=True)
        figures[path.stem] = [tuple(_rounded(v) for v in row.values()) for row in table.to_pylist()]
    return figures


@pytest.fixture(scope="module")
def runs(endpoint, tmp_path_factory):
    """One upload run and one appeals run into each warehouse, the BigQuery upload run twice."""
    root = tmp_path_factory.mktemp("bq_runs")
    corpus.generate_corpus(root / "uploads", count=12, seed=21, corrupt=1)
    manifest = root / "uploads" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, lines[0]]) + "\n")  # a re-sent event: skipped, counted
    inputs = _location(endpoint, "uploads")
    events = []
    for line in [*lines, lines[0]]:
        row = json.loads(line)
        row["media_uri"] = str(root / "uploads" / row["media_uri"])  # a table has no directory to resolve against
        events.append(row)
    events_table = _load_rows(inputs, "upload_events", events, list(bigquery_schema("upload_events")))

    embedded = root / "embedded"
    warehouse = f"bq://{PROJECT}.wh"
    bq = ["--warehouse", warehouse, "--bigquery_endpoint", endpoint, "--bigquery_write_method", STREAMING_INSERTS]
    common = ["--min_cell_count", "1", RUNNER]
    assert batch.run(["--input", str(manifest), "--warehouse", str(embedded), "--run_id", "1-upload", *common]) == 0
    assert (
        batch.run(["--input", events_table, *bq, "--media_root", str(manifest.parent), "--run_id", "1-upload", *common])
        == 0
    )
    reader = BigQueryReader(_location(endpoint, "wh"))
    assert transparency.run([*bq[:4], "--min_cell_count", "1", RUNNER]) == 0
    after_one = _figures(reader)
    assert (
        batch.run(["--input", events_table, *bq, "--media_root", str(manifest.parent), "--run_id", "2-rerun", *common])
        == 0
    )  # the rerun
    assert transparency.run([*bq[:4], "--min_cell_count", "1", RUNNER]) == 0
    after_rerun = _figures(reader)

    labels = root / "uploads" / "labels.jsonl"
    appeals = root / "appeals.jsonl"
    assert sample_appeals.run(["--warehouse", str(embedded), "--labels", str(labels), "--out", str(appeals),
                               "--share", "1.0", "--seed", "4"]) == 0  # fmt: skip
    appeal_rows = [json.loads(line) for line in appeals.read_text().splitlines()]
    assert appeal_rows, "the run made no restrictive decision to appeal"
    appeals_table = _load_rows(inputs, "appeal_outcomes", appeal_rows, list(bigquery_schema("appeal_outcomes")))
    assert batch.run(["--appeals", str(appeals), "--warehouse", str(embedded), "--run_id", "3-appeals", *common]) == 0
    assert batch.run(["--appeals", appeals_table, *bq, "--run_id", "3-appeals", *common]) == 0
    assert transparency.run(["--warehouse", str(embedded), "--min_cell_count", "1", RUNNER]) == 0
    assert transparency.run([*bq[:4], "--min_cell_count", "1", RUNNER]) == 0
    return {
        "root": root,
        "embedded": embedded,
        "warehouse": warehouse,
        "location": _location(endpoint, "wh"),
        "after_one": after_one,
        "after_rerun": after_rerun,
        "appeals": appeal_rows,
        "endpoint": endpoint,
    }


def test_tables_are_created_from_the_schema_files_with_the_declared_partitioning_and_clustering(endpoint):
    from google.cloud import bigquery

    location = _location(endpoint, "fresh")
    create_tables(location)
    with location.client() as client:
        for table in (*TABLES, *INPUT_TABLES):
            made = client.get_table(location.table_id(physical_table(table)))
            layout = table_layouts()[table]
            assert [f.name for f in made.schema] == [f["name"] for f in bigquery_schema(table)], table
            # Every column described, as in the embedded catalog.
            assert [f.description for f in made.schema] == [f["description"] for f in bigquery_schema(table)], table
            assert made.time_partitioning.field == layout["time_partitioning"]["field"], table
            assert made.time_partitioning.type_ == layout["time_partitioning"]["type"], table
            assert made.clustering_fields == layout["clustering"], table
        for name in view_queries(PROJECT, "fresh"):
            view = client.get_table(f"{PROJECT}.{name}")
            assert view.table_type == "VIEW", name
        # Made again: nothing changes, and the views' labels say so without a lookup each. A view
        # of another query, made by an earlier release (labelled with its own query) or by
        # Terraform (no label), is made again from this one.
        assert create_tables(location) == []
        name, sql = next(iter(view_queries(PROJECT, "fresh").items()))
        older = "SELECT 1 AS x"
        for labels in ({"query_sha256": hashlib.sha256(older.encode()).hexdigest()[:32]}, {}):
            client.delete_table(f"{PROJECT}.{name}")
            view = bigquery.Table(f"{PROJECT}.{name}")
            view.view_query, view.labels = older, labels
            client.create_table(view)
            assert create_tables(location) == [f"{PROJECT}.{name}"]
            assert client.get_table(f"{PROJECT}.{name}").view_query == sql
    # What a compliance analyst is granted names no account.
    for table, spec in compliance_views()["views"].items():
        columns = query_arrow(location, f"SELECT * FROM `{PROJECT}.fresh_compliance.{table}` LIMIT 0").column_names
        assert "account_id" not in columns and not set(spec["drop"]) & set(columns), table


def test_a_batch_run_lands_every_table_as_the_embedded_warehouse_does(runs):
    location = runs["location"]
    embedded = EmbeddedReader(str(runs["embedded"]))
    for table in ("features", "media_scores", "enforcement_decisions", "enforcement_events", "statements_of_reasons",
                  "transparency_aggregates", "dead_letter", "appeals", "retraining_labels", "review_queue",
                  "decision_log"):  # fmt: skip
        stored = physical_table(table)
        # The BigQuery upload run ran twice: each run's rows are its own (run_id), none lost.
        for run_id in ("1-upload", "3-appeals"):
            on_bigquery = query_arrow(location, f"SELECT COUNT(*) AS n FROM `{PROJECT}.wh.{stored}` WHERE run_id = "
                                      f"'{run_id}'").column("n")[0].as_py()  # fmt: skip
            files = [f for f in table_files(str(runs["embedded"]), table) if Path(f).name.startswith(f"{run_id}-")]
            in_files = (
                embedded.query(f"SELECT COUNT(*) AS n FROM read_parquet({files})").column("n")[0].as_py()
                if files
                else 0
            )
            assert on_bigquery == in_files, (table, run_id)
    # The strike ledger the next run starts from holds every run's strikes, each once.
    current = query_arrow(location, f"SELECT COUNT(*) AS n, COUNT(DISTINCT strike_id) AS strikes "
                                    f"FROM `{PROJECT}.wh.strike_ledger_current`").to_pylist()[0]  # fmt: skip
    every = query_arrow(location, f"SELECT COUNT(DISTINCT strike_id) AS n FROM `{PROJECT}.wh.strike_ledger`")
    assert current["n"] == current["strikes"] == every.column("n")[0].as_py()


def test_every_upload_row_is_accounted_for_in_bigquery(runs):
    location = runs["location"]
    rows = query_arrow(
        location, f"SELECT step, disposition, reason FROM `{PROJECT}.wh.dead_letter` WHERE run_id = '1-upload'"
    )
    steps = sorted((r["step"], r["disposition"]) for r in rows.to_pylist())
    scored = query_arrow(location, f"SELECT COUNT(*) AS n FROM `{PROJECT}.wh.media_scores` WHERE run_id = '1-upload'")
    upload_rows = 12 + 1 + 1  # items, the corrupt one, the re-sent event
    assert scored.column("n")[0].as_py() + len(steps) == upload_rows
    assert ("dedupe_events", "skipped") in steps


def _comparable(figures: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The figures both warehouses must agree on. Hours to action count from when each run
    decided (the warehouses were written minutes apart), so the decisions behind them are
    compared, not the hours; the dead-letter summary counts every run's failures, and the
    BigQuery side ran its uploads twice (each run's dead letters are compared apart)."""
    kept = {k: v for k, v in figures.items() if k != "dead_letter_summary"}
    kept["median_time_to_action"] = [row[:-1] for row in figures["median_time_to_action"]]
    return kept


def test_the_compliance_queries_answer_on_bigquery_what_they_answer_on_duckdb(runs):
    on_duckdb = _figures(EmbeddedReader(str(runs["embedded"])))
    on_bigquery = _figures(BigQueryReader(runs["location"]))
    assert on_duckdb["actions_by_category"] and on_duckdb["appeals_overturn_rate"]
    assert on_duckdb["median_time_to_action"] and on_duckdb["statements_by_category"]
    assert _comparable(on_bigquery) == _comparable(on_duckdb)


def test_a_rerun_on_bigquery_leaves_every_compliance_figure_as_one_run_made_it(runs):
    operational = {"dead_letter_summary"}  # what failed in every run, reruns included
    once = {k: v for k, v in runs["after_one"].items() if k not in operational}
    twice = {k: v for k, v in runs["after_rerun"].items() if k not in operational}
    assert once["statements_by_category"] and twice == once
    location = runs["location"]
    stored = query_arrow(location, f"SELECT COUNT(*) AS n FROM `{PROJECT}.wh.enforcement_decisions_all_runs`")
    distinct = query_arrow(location, f"SELECT COUNT(*) AS n FROM `{PROJECT}.wh.enforcement_decisions`")
    # Every run's copies stay readable; the table readers see holds each decision once.
    assert stored.column("n")[0].as_py() > distinct.column("n")[0].as_py() > 0


def test_the_report_renders_from_bigquery(runs, tmp_path):
    assert report.run(["--warehouse", runs["warehouse"], "--bigquery_endpoint", runs["endpoint"],
                       "--out", str(tmp_path)]) == 0  # fmt: skip
    published, monitoring = ((tmp_path / page).read_text() for page in ("transparency_report.html", "monitoring.html"))
    assert "Summary:" in published and "None sent in this period" in published  # the filing's figures, from BigQuery
    assert "Restrictive decisions" in monitoring and runs["warehouse"] in monitoring


def test_the_training_reader_reads_the_features_back_equal_to_the_parquet_ones(runs):
    from_bigquery, _ = read_features(runs["warehouse"], runs["endpoint"])
    from_parquet = read_parquet_examples(table_files(str(runs["embedded"]), "features"))
    by_id = {e["content_id"]: e for e in from_parquet}
    # The BigQuery upload run ran twice: each item's features twice, equal both times.
    assert {e["content_id"] for e in from_bigquery} == set(by_id)
    for example in from_bigquery:
        expected = by_id[example["content_id"]]
        assert example.keys() == expected.keys()
        for key, value in example.items():
            if key != "extracted_at":  # when each run extracted it
                np.testing.assert_equal(value, expected[key], err_msg=key)


def test_the_training_set_job_builds_from_bigquery_the_set_it_builds_from_duckdb(runs, tmp_path):
    """`deepfake training-set` on BigQuery: the appeals' labels (overturned: real, upheld:
    synthetic) joined to the features, every label row in the set or skipped with its reason,
    as on the embedded warehouse (the BigQuery uploads ran twice: each upload once)."""
    from training import warehouse_set

    sets = {}
    for name, warehouse, extra in (("duckdb", str(runs["embedded"]), []),
                                   ("bigquery", runs["warehouse"], ["--bigquery_endpoint", runs["endpoint"]])):  # fmt: skip
        out = tmp_path / name
        assert warehouse_set.run(["--warehouse", warehouse, *extra, "--start", "2000-01-01", "--end", "2099-01-01",
                                  "--out", str(out), RUNNER]) == 0  # fmt: skip
        rows = {part: [json.loads(line) for line in (out / f"{part}.jsonl").read_text().splitlines()]
                for part in ("labels", "skipped")}  # fmt: skip
        sets[name] = (sorted((r["content_id"], r["label"], r["source"]) for r in rows["labels"]),
                      sorted((r["content_id"], r["source"], r["reason"]) for r in rows["skipped"]))  # fmt: skip
    # An overturned appeal says real, an upheld one synthetic; each appealed decision's upload once.
    said = sorted("real" if row["outcome"] == "overturned" else "synthetic" for row in runs["appeals"])
    assert sets["bigquery"] == sets["duckdb"]
    labels, skipped = sets["bigquery"]
    assert sorted(label for _, label, _ in labels) == said and not skipped


def test_a_row_bigquery_refuses_becomes_a_dead_letter_with_its_reason(endpoint):
    """A table deployed from an older schema (no `source` column yet): BigQuery refuses the
    rows that carry it, and each refusal is a dead letter naming the field, not a lost row."""
    import apache_beam as beam
    from google.cloud import bigquery

    from enforcement.appeals import RetrainingLabel

    location = _location(endpoint, "drift")
    with location.client() as client:  # the two tables the step writes, not the whole dataset
        client.create_dataset(location.dataset)
        client.create_table(bigquery.Table.from_api_repr(table_resource("dead_letter", PROJECT, location.dataset)))
        older = [bigquery.SchemaField.from_api_repr(f) for f in bigquery_schema("retraining_labels")]
        table_id = location.table_id("retraining_labels")
        client.create_table(bigquery.Table(table_id, schema=[f for f in older if f.name != "source"]))
    sink = BigQueryWarehouse(location, "drift-run", STREAMING_INSERTS)
    labels = [RetrainingLabel(content_id=f"c{i}", decision_id=f"d{i}", label="real", source="appeal_overturned",
                              labelled_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC)) for i in range(3)]  # fmt: skip
    with batch_pipeline() as p:
        refused = sink.write("retraining_labels", p | beam.Create(labels))
        sink.write("dead_letter", refused)
    rows = query_arrow(location, f"SELECT step, reason, error, content_id FROM `{PROJECT}.drift.dead_letter`")
    dead = sorted(rows.to_pylist(), key=lambda r: r["content_id"])
    assert [r["content_id"] for r in dead] == ["c0", "c1", "c2"]
    for row in dead:
        assert row["step"] == "write_retraining_labels"
        assert row["reason"].startswith("bigquery_rejected:") and "source" in row["error"]
    assert sink.run_counts("dead_letter", "step") == (("write_retraining_labels", 3),)


def test_the_review_loop_tools_answer_on_bigquery_what_they_answer_on_duckdb(runs, tmp_path):
    """The simulation, the automation report and signal health run the same SQL on both."""
    from tools import automation, signal_health, simulate

    endpoint = ["--bigquery_endpoint", runs["endpoint"]]
    answers = {}
    for name, warehouse, extra in (("duckdb", str(runs["embedded"]), []), ("bigquery", runs["warehouse"], endpoint)):
        out = tmp_path / name
        candidate = "policies/candidates/reduce_reach_possible.yaml"
        assert simulate.run(["--warehouse", warehouse, "--candidate", candidate, "--out", str(out), *extra]) == 0
        assert automation.run(["--warehouse", warehouse, "--out", str(out / "automation.json"), *extra]) == 0
        assert signal_health.run(["--warehouse", warehouse, "--period_type", "month", "--out", str(out), *extra]) == 0
        answers[name] = (
            json.loads((out / "simulation.json").read_text()),
            json.loads((out / "automation.json").read_text())["rules"],
            json.loads((out / "signal_health.json").read_text()),
        )
    (sim_duck, rules_duck, health_duck), (sim_bq, rules_bq, health_bq) = answers["duckdb"], answers["bigquery"]
    for key in ("items", "changed_items", "volumes", "quality"):
        assert sim_bq[key] == sim_duck[key], key
    assert rules_bq == rules_duck
    for score, figure in health_duck["scores"].items():  # sums may differ in the last bit between engines
        on_bigquery = health_bq["scores"][score]
        assert set(on_bigquery) == set(figure), score
        for key, value in figure.items():
            expected = pytest.approx(value) if isinstance(value, float) else value
            assert on_bigquery[key] == expected, (score, key)
    written = query_arrow(runs["location"], f"SELECT COUNT(*) AS n FROM `{PROJECT}.wh.signal_health`")
    assert written.column("n")[0].as_py() == len(health_bq["checks"])


def test_statements_are_submitted_once_from_bigquery(runs, tmp_path):
    """tools.submit_statements reads and records through BigQuery as through DuckDB."""
    from tools import submit_statements

    from .transparency_database import TransparencyDatabase

    token = tmp_path / "token"
    token.write_text("7|stand-in\n")
    database = TransparencyDatabase("7|stand-in").start()
    try:
        argv = ["--warehouse", runs["warehouse"], "--bigquery_endpoint", runs["endpoint"],
                "--endpoint", database.url, "--token-file", str(token)]  # fmt: skip
        assert submit_statements.run(argv, sleep=[].append) == 0
        assert submit_statements.run(argv, sleep=[].append) == 0
    finally:
        database.stop()
    reader = BigQueryReader(runs["location"])
    statements = reader.rows("SELECT puid FROM statements_of_reasons")
    assert statements and sorted(database.stored) == sorted(r["puid"] for r in statements)
    assert len(database.requests) == -(-len(statements) // 100)  # the rerun sent nothing
    outcomes = reader.rows("SELECT status, COUNT(*) AS n FROM statement_submissions GROUP BY status")
    assert outcomes == [{"status": "accepted", "n": len(statements)}]
