"""The published transparency figures: every run's decisions and appeals, each counted once.

    python -m pipelines.transparency --warehouse DIR [--min_cell_count 10]

Each batch run writes `transparency_aggregates` over its own decisions and appeals, which
says what that run did. A period's published figures cannot be summed from those cells:

* a rerun re-emits its decisions with the same ids (downstream systems de-duplicate them),
  so summing counts them twice;
* a cell is suppressed on the run's own count, so a cell that is small in every run but not
  over the month would be withheld every time and lost from the month's total.

This job reads every run's `enforcement_decisions` and `appeals`, keeps one row per decision
id and per appeal id, recomputes the cells with the same transform (day and month cells,
suppression and complementary suppression on the period's own counts), and replaces the
`transparency_report` table. The compliance queries in `sql/` read that table; run the job
before publishing (`make demo` runs it after the appeals run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import secrets
import shutil
import sys
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from enforcement.appeals import Appeal, AppealOutcome, decision_from_row
from pipelines.batch import LOCAL_RUNNER
from pipelines.reconcile import duckdb_shell
from schemas.records import parse_timestamp
from transforms.transparency import AggregateTransparency
from transforms.warehouse import ReadTableRows, WriteTable, table_files, write_catalog

TABLE = "transparency_report"
_NAMESPACE = "transparency_report"


def _canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _one_row(keyed, counter_name: str) -> dict:
    """One row per id: copies re-emitted by reruns are the same record. Should two differ
    (a hand-edited table), the choice is still deterministic."""
    _, rows = keyed
    rows = list(rows)
    if len(rows) > 1:
        Metrics.counter(_NAMESPACE, counter_name).inc(len(rows) - 1)
    return min(rows, key=_canonical)


class DistinctRows(beam.PTransform):
    """Rows -> one row per value of `id_field`, counting the repeats it drops."""

    def __init__(self, id_field: str):
        super().__init__()
        self._id_field = id_field

    def expand(self, rows):
        return (
            rows
            | "ById" >> beam.Map(lambda row, field: (str(row[field]), row), field=self._id_field)
            | "GroupById" >> beam.GroupByKey()
            | "OneRow" >> beam.Map(_one_row, counter_name=f"repeated_{self._id_field}")
        )


def _appeal_from_row(row: dict) -> Appeal:
    return Appeal(
        decision_id=str(row["decision_id"]),
        outcome=str(row["outcome"]),
        decided_at=parse_timestamp(row["appeal_decided_at"], "appeal_decided_at"),
    )


def _join_appeals(keyed):
    decision_id, grouped = keyed
    decisions, appeals = list(grouped["decisions"]), list(grouped["appeals"])
    if not decisions:  # the appealed decision's rows are gone (a truncated table)
        Metrics.counter(_NAMESPACE, "appeals_without_decision").inc(len(appeals))
        logging.warning("%d appeal(s) of decision %s left out: the decision is not in the warehouse",
                        len(appeals), decision_id)  # fmt: skip
        return
    for appeal in appeals:
        yield AppealOutcome(appeal, decisions[0])


def build_pipeline(p: beam.Pipeline, decision_files: tuple[str, ...], appeal_files: tuple[str, ...],
                   warehouse: str, run_id: str, min_cell_count: int) -> beam.PCollection:  # fmt: skip
    """The published cells over every run; returns the dead letters of the way."""
    decisions = (
        p
        | "ReadDecisions" >> ReadTableRows(decision_files)
        | "DistinctDecisions" >> DistinctRows("decision_id")
        | "ToDecisions" >> beam.Map(decision_from_row)
    )
    appeals = (
        p
        | "ReadAppeals" >> ReadTableRows(appeal_files)
        | "DistinctAppeals" >> DistinctRows("appeal_id")
        | "ToAppeals" >> beam.Map(_appeal_from_row)
    )
    outcomes = (
        {
            "decisions": decisions | "DecisionsById" >> beam.Map(lambda d: (d.decision_id, d)),
            "appeals": appeals | "AppealsByDecision" >> beam.Map(lambda a: (a.decision_id, a)),
        }
        | "JoinAppeals" >> beam.CoGroupByKey()
        | "Outcomes" >> beam.FlatMap(_join_appeals)
    )
    cells, unaggregated = decisions | "Aggregate" >> AggregateTransparency(min_cell_count, outcomes)
    unwritten = cells | "WriteReport" >> WriteTable(warehouse, TABLE, run_id)
    return (unaggregated, unwritten) | "MergeDeadLetters" >> beam.Flatten()


def _counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE).with_name(name))["counters"]
    return sum(c.committed or 0 for c in found)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.transparency",
        description="Recompute the published transparency cells over every run in the warehouse.",
        epilog="Beam options such as --runner and --direct_num_workers pass through.",
    )
    parser.add_argument("--warehouse", required=True, help="Embedded warehouse directory written by the batch job.")
    parser.add_argument(
        "--min_cell_count", type=int, default=10, help="Cells under this count are suppressed (default %(default)s)."
    )
    args, beam_args = parser.parse_known_args(argv)
    if args.min_cell_count < 1:
        parser.error("--min_cell_count must be at least 1")
    root = Path(args.warehouse)
    decision_files, appeal_files = (table_files(args.warehouse, t) for t in ("enforcement_decisions", "appeals"))
    if not decision_files:
        parser.error(f"--warehouse: no enforcement_decisions files under {root}; run the batch job first")

    pipeline_options = PipelineOptions(beam_args)
    standard = pipeline_options.view_as(StandardOptions)
    standard.runner = standard.runner or LOCAL_RUNNER
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    staging = root / f".{TABLE}-{run_id}"  # written aside, then swapped in: readers never see half a table
    with beam.Pipeline(options=pipeline_options) as p:
        failures = build_pipeline(p, decision_files, appeal_files, str(staging), run_id, args.min_cell_count)
        _ = failures | "WriteDeadLetters" >> WriteTable(args.warehouse, "dead_letter", run_id)
    result = p.result
    target = root / TABLE
    shutil.rmtree(target, ignore_errors=True)
    (staging / TABLE).mkdir(parents=True, exist_ok=True)  # no restrictive decision yet: an empty table
    (staging / TABLE).rename(target)
    shutil.rmtree(staging)
    catalog = write_catalog(args.warehouse)

    print(f"decision files: {len(decision_files)}  appeal files: {len(appeal_files)}")
    print(f"decisions repeated across runs, counted once: {_counter(result, 'repeated_decision_id')}")
    print(f"appeals repeated across runs, counted once: {_counter(result, 'repeated_appeal_id')}")
    print(f"appeals left out, their decision not in the warehouse: {_counter(result, 'appeals_without_decision')}")
    print(f"{TABLE}: {target}  (min_cell_count {args.min_cell_count})")
    print(
        f"  query it: {duckdb_shell()} {catalog} \"select * from {TABLE} where period_type = 'month' and not suppressed\""
    )
    return 0


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run())
