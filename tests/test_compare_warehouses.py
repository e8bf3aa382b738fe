"""The refactoring check: two warehouses agree up to the run's clock and a model's round-off."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from tools.compare_warehouses import compare


def _decisions(directory, rows):
    (directory / "enforcement_decisions").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), directory / "enforcement_decisions" / "run-00000-of-00001.parquet")


def _row(decision_id, action="remove", score=0.99, hour=1):
    return {"decision_id": decision_id, "action": action, "fused_score": score,
            "decided_at": dt.datetime(2026, 11, 1, hour, tzinfo=dt.UTC)}  # fmt: skip


def test_runs_that_differ_only_in_their_clock_and_round_off_agree(tmp_path):
    _decisions(tmp_path / "a", [_row("d1"), _row("d2", "none", 0.1)])
    _decisions(tmp_path / "b", [_row("d2", "none", 0.1 + 1e-8, hour=5), _row("d1", hour=7)])
    assert compare(tmp_path / "a", tmp_path / "b", ["enforcement_decisions"]) == []


def test_a_changed_decision_or_a_lost_one_is_reported(tmp_path):
    _decisions(tmp_path / "a", [_row("d1"), _row("d2", "none", 0.1)])
    _decisions(tmp_path / "b", [_row("d1", "label")])
    problems = compare(tmp_path / "a", tmp_path / "b", ["enforcement_decisions"])
    assert problems == [
        "enforcement_decisions: ('d2',) only before",
        "enforcement_decisions: ('d1',) differs in ['action']",
    ]
