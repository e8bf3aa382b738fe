"""The published transparency figures: every run's decisions and appeals, each counted once.

    python -m pipelines.transparency --warehouse DIR|bq://PROJECT.DATASET [--bigquery_endpoint URL] [--min_cell_count 10]

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

import datetime as dt
import functools
import json
import logging
import secrets
import shutil
import sys
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from enforcement.appeals import Appeal, decision_from_row
from pipelines.batch import LOCAL_RUNNER
from pipelines.options import StrictParser, add_flags
from schemas.bigquery import ONE_ROW_PER
from schemas.records import parse_timestamp
from transforms.appeals import JoinAppeals
from transforms.dead_letter import MapOrDeadLetter
from transforms.distinct import KeepOnePerKey
from transforms.transparency import AggregateTransparency
from warehouse.reader import query_hint
from warehouse.sinks import BigQueryWarehouse, EmbeddedWarehouse, History, Sink, open_warehouse

TABLE = "transparency_report"
_NAMESPACE = "transparency_report"


def _canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def standing_row(rows: list[dict], moment: str, outcome: tuple[str, ...]) -> dict:
    """Of one id's copies, the outcome that stands (the newest), dated when that outcome was first
    recorded: the rule of the catalog's views (`schemas.bigquery.ONE_ROW_PER`)."""
    newest = max(rows, key=lambda row: (row[moment], _canonical(row)))
    same = [row for row in rows if all(row.get(c) == newest.get(c) for c in outcome)]
    return min(same, key=lambda row: (row[moment], _canonical(row)))


class DistinctRows(beam.PTransform):
    """Warehouse rows -> one row per id (`ONE_ROW_PER[table]`'s rule), counting the repeats."""

    def __init__(self, table: str):
        super().__init__()
        self._table = table

    def expand(self, rows):
        field, moment, outcome = ONE_ROW_PER[self._table]
        choose = functools.partial(standing_row, moment=moment, outcome=outcome)
        kept, repeats = rows | "OnePerId" >> KeepOnePerKey(lambda row: str(row[field]), _canonical, choose=choose)
        _ = repeats | "CountRepeats" >> beam.Map(lambda _, name: Metrics.counter(_NAMESPACE, name).inc(),
                                                 name=f"repeated_{field}")  # fmt: skip
        return kept


def _appeal_from_row(row: dict) -> Appeal:
    return Appeal(
        decision_id=str(row["decision_id"]),
        outcome=str(row["outcome"]),
        decided_at=parse_timestamp(row["appeal_decided_at"], "appeal_decided_at"),
    )


def build_pipeline(p: beam.Pipeline, history: History, report: Sink, min_cell_count: int) -> beam.PCollection:
    """The published cells over every run (earlier decisions and appeals as `history` reads
    them), written to `report`'s transparency_report table; returns the dead letters of the
    way (an appeal whose decision is no longer in the warehouse among them)."""
    decisions, undecodable = (
        p
        | "ReadDecisions" >> history.decisions
        | "DistinctDecisions" >> DistinctRows("enforcement_decisions")
        | "ToDecisions" >> MapOrDeadLetter(decision_from_row, "read_decision_history")
    )
    appeals, unreadable = (
        p
        | "ReadAppeals" >> history.appeals
        | "DistinctAppeals" >> DistinctRows("appeals")
        | "ToAppeals" >> MapOrDeadLetter(_appeal_from_row, "read_appeals")
    )
    outcomes, orphaned = {"appeals": appeals, "decisions": decisions} | "JoinAppeals" >> JoinAppeals()
    cells, unaggregated = decisions | "Aggregate" >> AggregateTransparency(min_cell_count, outcomes)
    unwritten = report.write(TABLE, cells)
    return (undecodable, unreadable, orphaned, unaggregated, unwritten) | "MergeDeadLetters" >> beam.Flatten()


def _counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE).with_name(name))["counters"]
    return sum(c.committed or 0 for c in found)


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(
        prog="python -m pipelines.transparency",
        description="Recompute the published transparency cells over every run in the warehouse.",
        epilog="Beam options such as --runner and --direct_num_workers pass through.",
    )
    add_flags(parser, "warehouse", "bigquery_endpoint", "min_cell_count", required=("warehouse",))
    args, beam_args = parser.parse_known_args(argv)
    if args.min_cell_count < 1:
        parser.error("--min_cell_count must be at least 1")
    pipeline_options = PipelineOptions(beam_args)
    standard = pipeline_options.view_as(StandardOptions)
    standard.runner = standard.runner or LOCAL_RUNNER
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    temp_location = pipeline_options.view_as(GoogleCloudOptions).temp_location
    try:
        sink = open_warehouse(args.warehouse, run_id, bigquery_endpoint=args.bigquery_endpoint,
                              temp_location=temp_location)  # fmt: skip
    except ValueError as exc:
        parser.error(f"--warehouse: {exc}")
    if not sink.has_rows("enforcement_decisions"):
        parser.error(f"--warehouse: no enforcement_decisions in {args.warehouse}; run the batch job first")
    history = sink.history(None, truncate=False)
    if isinstance(sink, EmbeddedWarehouse):
        # Written aside, then swapped in: readers never see half a table.
        staging = Path(args.warehouse) / f".{TABLE}-{run_id}"
        report: Sink = EmbeddedWarehouse(str(staging), run_id)
    else:  # a load job that replaces the table's rows in one step
        sink.prepare(truncate=False)
        report = BigQueryWarehouse(sink.location, run_id, temp_location=sink.temp_location, truncate_tables=(TABLE,))
    with beam.Pipeline(options=pipeline_options) as p:
        failures = build_pipeline(p, history, report, args.min_cell_count)
        sink.write("dead_letter", failures)
    result = p.result
    if isinstance(sink, EmbeddedWarehouse):
        target = Path(args.warehouse) / TABLE
        shutil.rmtree(target, ignore_errors=True)
        (staging / TABLE).mkdir(parents=True, exist_ok=True)  # no restrictive decision yet: an empty table
        (staging / TABLE).rename(target)
        shutil.rmtree(staging)
    where = sink.finish()

    print(f"decisions repeated across runs, counted once: {_counter(result, 'repeated_decision_id')}")
    print(f"appeals repeated across runs, counted once: {_counter(result, 'repeated_appeal_id')}")
    failed = dict(((step, reason), n) for step, reason, n in sink.run_counts("dead_letter", "step, reason"))
    orphans = sum(n for (step, _), n in failed.items() if step == "apply_appeals")
    print(f"appeals left out, their decision not in the warehouse: {orphans} (dead_letter rows of run {run_id})")
    for (step, reason), count in sorted(failed.items()):
        if step != "apply_appeals":
            print(f"  dead_letter {step:<24} {reason:<20} {count}")
    print(f"{TABLE}: {where}  (min_cell_count {args.min_cell_count})")
    sql = "select * from {} where period_type = 'month' and not suppressed"
    print(f"  query it: {query_hint(where, sql, TABLE)}")
    return 0


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run())
