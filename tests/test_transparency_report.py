"""The published transparency report: every run's decisions and appeals, each counted once."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from enforcement.appeals import Appeal, AppealOutcome
from pipelines import batch, transparency
from schemas import arrow_schema, validate_row
from schemas.records import Decision
from tools import report
from warehouse.reader import EmbeddedReader

NOVEMBER = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.UTC)


def _decision(index: int) -> Decision:
    return Decision(
        decision_id=f"d{index:03d}",
        content_id=f"c{index:03d}",
        account_id=f"a{index % 3}",
        action="remove",
        category="synthetic_media_undisclosed",
        rule_id="remove_high_confidence",
        policy_id="synthetic_media",
        policy_version="1.4.0",
        fused_score=0.99,
        detection_method="automated",
        automated_decision="fully",
        media_type="video",
        surface="feed",
        country="FR",
        uploaded_at=NOVEMBER,
        decided_at=NOVEMBER + dt.timedelta(hours=index),
        targets=("content_moderation",),
    )


def _write_run(warehouse: Path, table: str, run_id: str, records) -> None:
    rows = [validate_row(table, record.to_row()) for record in records]
    (warehouse / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(table)),
                   warehouse / table / f"{run_id}-00000-of-00001.parquet")  # fmt: skip


def _month_cell(warehouse: Path, measure: str):
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(
            "select item_count, suppressed, overturned_count from transparency_report "
            f"where measure = '{measure}' and breakdown = 'overall' and period_type = 'month'"
        ).fetchall()


def _run(warehouse: Path, min_cell_count: int) -> int:
    return transparency.run(
        ["--warehouse", str(warehouse), "--min_cell_count", str(min_cell_count), f"--runner={batch.LOCAL_RUNNER}"]
    )


def test_reruns_count_once_and_suppression_reads_the_period_total(tmp_path, capsys):
    warehouse = tmp_path / "wh"
    # Two runs of six decisions each, three of them re-emitted by the second run: 9 distinct.
    _write_run(warehouse, "enforcement_decisions", "run1", [_decision(i) for i in range(6)])
    _write_run(warehouse, "enforcement_decisions", "run2", [_decision(i) for i in range(3, 9)])
    december = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    overturned = AppealOutcome(Appeal("d000", "overturned", december), _decision(0))
    orphan = AppealOutcome(Appeal("gone", "upheld", december), dataclasses.replace(_decision(99), decision_id="gone"))
    _write_run(warehouse, "appeals", "appeals1", [overturned, orphan])
    _write_run(warehouse, "appeals", "appeals2", [overturned])  # the same appeal written again

    # Each run alone has 6 decisions: under a minimum of 8 every run's cell is withheld. Over
    # the month there are 9 distinct decisions, so the published cell shows them, once each.
    assert _run(warehouse, 8) == 0
    out = capsys.readouterr().out
    assert "decisions repeated across runs, counted once: 3" in out
    assert "appeals repeated across runs, counted once: 1" in out
    assert "appeals left out, their decision not in the warehouse: 1" in out
    assert _month_cell(warehouse, "decisions") == [(9, False, None)]
    assert _month_cell(warehouse, "appeals") == [(None, True, None)]  # 1 appeal < 8

    # Recomputing replaces the table (no second copy of its cells).
    assert _run(warehouse, 1) == 0
    assert _month_cell(warehouse, "decisions") == [(9, False, None)]
    assert _month_cell(warehouse, "appeals") == [(1, False, 1)]
    assert len(list((warehouse / "transparency_report").glob("*.parquet"))) >= 1
    assert not list(warehouse.glob(".transparency_report-*"))

    # The compliance queries read the published table.
    actions = report.run_queries(EmbeddedReader(str(warehouse)))["actions_by_category"][1]
    assert sum(row[5] for row in actions) == 9


def test_a_warehouse_without_restrictive_decisions_publishes_an_empty_table(tmp_path):
    warehouse = tmp_path / "wh"
    quiet = dataclasses.replace(_decision(0), action="none", targets=())
    _write_run(warehouse, "enforcement_decisions", "run1", [quiet])
    assert _run(warehouse, 1) == 0
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select count(*) from transparency_report").fetchall() == [(0,)]


def test_of_an_ids_copies_the_newest_outcome_stands_dated_when_first_recorded():
    from pipelines.transparency import standing_row

    def row(action, day):
        return {
            "decision_id": "d1",
            "action": action,
            "rule_id": "r",
            "decided_at": dt.datetime(2026, 11, day, tzinfo=dt.UTC),
        }

    first, rerun, changed, changed_again = row("none", 1), row("none", 2), row("remove", 3), row("remove", 4)
    assert standing_row([first, rerun], "decided_at", ("action", "rule_id")) is first  # a rerun changes nothing
    chosen = standing_row([rerun, changed_again, first, changed], "decided_at", ("action", "rule_id"))
    assert chosen is changed  # the newer decision stands, from when it was first made
