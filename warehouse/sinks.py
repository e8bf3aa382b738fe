"""Where a job's outputs go, and what it reads back of earlier runs, behind one interface.

A sink adds write steps to a pipeline: `write(table, records)` for every warehouse table,
`write_training_examples` for the retraining features, `export_statements` for the statements
of reasons in the Transparency Database's API batches, `publish_events` for the enforcement
events of each downstream target; each returns the dead letters of the records it could not
write, so nothing is dropped. At launch, `history` says where the account stage's earlier
decisions, appeals and strike ledger come from and `prepare` readies the tables; after the
run, `run_counts` counts what the run wrote (the reconciliation) and `finish` names what a
reader opens.

* `EmbeddedWarehouse`: Parquet per table and a DuckDB catalog, no cloud needed (the default).
* `BigQueryWarehouse` (`--warehouse bq://PROJECT.DATASET`): BigQuery tables made from
  `schemas/`, written through Beam's `WriteToBigQuery`.
Either publishes enforcement events to one Pub/Sub topic per target as well, when asked.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import glob
import secrets
import tempfile
from pathlib import Path

import apache_beam as beam

from transforms.pubsub import PublishEvents
from transforms.statements import ExportStatements
from warehouse.bigquery import FILE_LOADS, BigQueryLocation, QueryRows, WriteBigQueryTable, is_bigquery_uri
from warehouse.embedded import (
    STATEMENT_BATCH_DIR,
    ReadTableRows,
    WriteTable,
    WriteTrainingExamples,
    all_runs_relation,
    clear_tables,
    empty_select,
    table_files,
    write_catalog,
)


@dataclasses.dataclass(frozen=True)
class History:
    """What the account stage starts from: readers (PBegin -> rows) of the earlier strike
    ledger, decisions, appeals, verdicts and campaigns, settled at launch (before a truncating
    run clears them)."""

    ledger: beam.PTransform = dataclasses.field(default_factory=lambda: ReadTableRows(()))
    decisions: beam.PTransform = dataclasses.field(default_factory=lambda: ReadTableRows(()))
    appeals: beam.PTransform = dataclasses.field(default_factory=lambda: ReadTableRows(()))
    reviews: beam.PTransform = dataclasses.field(default_factory=lambda: ReadTableRows(()))
    campaigns: beam.PTransform = dataclasses.field(default_factory=lambda: ReadTableRows(()))


class LaunchError(ValueError):
    """The warehouse cannot take this run as asked (the message says why)."""


def ledger_files(pattern: str) -> tuple[str, ...]:
    files = tuple(sorted(glob.glob(pattern)))
    if not files:
        raise LaunchError(f"--strike_ledger: no files match {pattern}")
    return files


class Sink(abc.ABC):
    """The write side of a job run (and what it reads back of earlier runs)."""

    run_id: str
    pubsub_project: str | None = None
    topic_prefix: str = ""

    @abc.abstractmethod
    def write(self, table: str, records: beam.PCollection) -> beam.PCollection | None:
        """Writes records (each with `to_row()`) to `table`; returns the dead letters."""

    @abc.abstractmethod
    def write_training_examples(self, features: beam.PCollection) -> beam.PCollection | None:
        """Writes MediaFeatures in the models' input layout; returns the dead letters."""

    @abc.abstractmethod
    def export_statements(self, statements: beam.PCollection) -> None:
        """Hands validated statements of reasons to the Transparency Database's submission."""

    @abc.abstractmethod
    def read_rows(self, table: str, columns: tuple[str, ...] | None = None) -> beam.PTransform:
        """PBegin -> every run's rows of `table` (dicts; only `columns` when given)."""

    @abc.abstractmethod
    def history(self, strike_ledger: str | None, truncate: bool) -> History:
        """Where this run's account stage reads earlier runs from (`strike_ledger`: Parquet
        files given on the command line instead of the warehouse's own ledger)."""

    @abc.abstractmethod
    def has_rows(self, table: str) -> bool:
        """Whether earlier runs wrote any row to `table`."""

    @abc.abstractmethod
    def prepare(self, truncate: bool) -> None:
        """Readies the tables before the pipeline runs (`truncate`: empties them first)."""

    @abc.abstractmethod
    def run_counts(self, table: str, columns: str) -> tuple[tuple, ...]:
        """`(columns..., count)` rows of what this run wrote to `table`, ordered by `columns`."""

    @abc.abstractmethod
    def all_runs(self, table: str) -> str:
        """SQL naming every run's rows of `table` (an empty relation with its columns when it has
        none yet), for `query`."""

    @abc.abstractmethod
    def query(self, sql: str) -> list[tuple]:
        """The rows of `sql` over `all_runs` relations, as the warehouse is now (mid-run too)."""

    def publish_events(self, events: list[beam.PCollection], pipeline: beam.Pipeline) -> beam.PCollection | None:
        """Writes every target's events to `enforcement_events` (`target` names it) and, with a
        Pub/Sub project, publishes each to its target's topic; returns the dead letters."""
        merged = tuple(events) | "MergeTargets" >> beam.Flatten(pipeline=pipeline)
        unwritten = self.write("enforcement_events", merged)
        if self.pubsub_project is None:
            return unwritten
        _, unpublished = merged | "PublishEvents" >> PublishEvents(self.pubsub_project, self.topic_prefix)
        return (unwritten, unpublished) | "EventFailures" >> beam.Flatten()

    def write_dead_letters(self, failures: list[beam.PCollection | None], pipeline: beam.Pipeline) -> beam.PCollection:
        """Every step's dead letters, merged, into the `dead_letter` table (a step that cannot
        fail gives None); returns the merged dead letters."""
        merged = tuple(f for f in failures if f is not None) | "MergeDeadLetters" >> beam.Flatten(pipeline=pipeline)
        self.write("dead_letter", merged)
        return merged

    def finish(self) -> str:
        """After the pipeline ran: what a reader opens to query the output."""
        return ""

    def write_records(self, table: str, records: list, dead_letters: list = ()) -> str:
        """A tool's few records (each with `to_row()`) into `table`, and its dead letters, in one
        small in-process pipeline through this sink; returns `finish()`."""
        with beam.Pipeline(runner="apache_beam.runners.portability.fn_api_runner.FnApiRunner") as p:
            failures = self.write(table, p | f"Create_{table}" >> beam.Create(records))
            failed = p | "CreateDeadLetters" >> beam.Create(list(dead_letters))
            self.write_dead_letters([failures, failed], p)
        return self.finish()


class EmbeddedWarehouse(Sink):
    """Parquet files per table under `directory` (one file set per run) and a DuckDB catalog."""

    def __init__(self, directory: str, run_id: str, pubsub_project: str | None = None, topic_prefix: str = ""):
        self.directory, self.run_id = directory, run_id
        self.pubsub_project, self.topic_prefix = pubsub_project, topic_prefix

    def write(self, table, records):
        return records | f"Write_{table}" >> WriteTable(self.directory, table, self.run_id)

    def write_training_examples(self, features):
        return features | "WriteTrainingExamples" >> WriteTrainingExamples(self.directory, self.run_id)

    def export_statements(self, statements):
        directory = str(Path(self.directory) / STATEMENT_BATCH_DIR)
        _ = statements | "ExportStatements" >> ExportStatements(directory, self.run_id)

    def history(self, strike_ledger, truncate):
        if strike_ledger:
            ledger = ledger_files(strike_ledger)
            inside = Path(self.directory).resolve() in Path(ledger[0]).resolve().parents
            if inside and truncate:
                raise LaunchError("--strike_ledger lies in --warehouse, which --write_disposition truncate would empty")
        else:
            ledger = () if truncate else table_files(self.directory, "strike_ledger")
        decisions, appeals, reviews, campaigns = map(
            self.read_rows, ("enforcement_decisions", "appeals", "reviews", "campaigns")
        )
        return History(ReadTableRows(ledger), decisions, appeals, reviews, campaigns)

    def read_rows(self, table, columns=None):
        return ReadTableRows(table_files(self.directory, table), columns)

    def has_rows(self, table):
        return bool(table_files(self.directory, table))

    def prepare(self, truncate):
        if truncate:
            clear_tables(self.directory)

    def run_counts(self, table, columns):
        from warehouse.embedded import parquet_run_counts

        return parquet_run_counts(self.directory, table, self.run_id, columns)

    def all_runs(self, table):
        return all_runs_relation(self.directory, table) or f"({empty_select(table)})"

    def query(self, sql):
        import duckdb

        with duckdb.connect() as con:
            return [tuple(row) for row in con.sql(sql).fetchall()]

    def finish(self) -> str:
        return str(write_catalog(self.directory))


class BigQueryWarehouse(Sink):
    """BigQuery tables (`tools.bigquery.create_tables`), written with `WriteToBigQuery`.

    The `features` table is the training data (`training.train --warehouse bq://...` reads it),
    so no TFRecord copy is written; statement batches go to `statements_dir` when given.
    """

    def __init__(self, location: BigQueryLocation, run_id: str, method: str = FILE_LOADS,
                 temp_location: str | None = None, statements_dir: str | None = None,
                 pubsub_project: str | None = None, topic_prefix: str = "", truncate_tables: tuple[str, ...] = ()):  # fmt: skip
        self.location, self.run_id, self.method = location, run_id, method
        # Load jobs stage files; a local API server reads them from this machine's disk.
        if temp_location is None and location.endpoint is not None:
            temp_location = tempfile.mkdtemp(prefix="bq-loads-")
        self.temp_location, self.statements_dir = temp_location, statements_dir
        self.pubsub_project, self.topic_prefix = pubsub_project, topic_prefix
        self.truncate_tables = frozenset(truncate_tables)

    def write(self, table, records):
        write = WriteBigQueryTable(self.location, table, self.run_id, self.method,
                                   truncate=table in self.truncate_tables, temp_location=self.temp_location)  # fmt: skip
        return records | f"Write_{table}" >> write

    def write_training_examples(self, features):
        return None

    def export_statements(self, statements):
        if self.statements_dir:
            _ = statements | "ExportStatements" >> ExportStatements(self.statements_dir, self.run_id)

    def _query(self, sql: str) -> QueryRows:
        return QueryRows(self.location, sql)

    def history(self, strike_ledger, truncate):
        if strike_ledger:
            ledger = ReadTableRows(ledger_files(strike_ledger))
        else:
            ledger = self._query(f"SELECT * FROM {self.location.sql_name('strike_ledger_current')}")
        decisions, appeals, reviews, campaigns = map(
            self.read_rows, ("enforcement_decisions", "appeals", "reviews", "campaigns")
        )
        return History(ledger, decisions, appeals, reviews, campaigns)

    def read_rows(self, table, columns=None):
        from schemas.bigquery import physical_table

        listed = ", ".join(f"`{c}`" for c in columns) if columns else "*"
        return self._query(f"SELECT {listed} FROM {self.location.sql_name(physical_table(table))}")

    def has_rows(self, table):
        from warehouse.bigquery import count_rows

        return count_rows(self.location, table) > 0

    def prepare(self, truncate):
        from warehouse.bigquery import create_tables

        create_tables(self.location, truncate=truncate)

    def run_counts(self, table, columns):
        from schemas.bigquery import physical_table
        from warehouse.bigquery import query_arrow

        sql = (
            f"SELECT {columns}, COUNT(*) AS n FROM {self.location.sql_name(physical_table(table))} "
            f"WHERE run_id = @run_id GROUP BY {columns} ORDER BY {columns}"
        )
        rows = query_arrow(self.location, sql, {"run_id": self.run_id}).to_pylist()
        return tuple(tuple(row.values()) for row in rows)

    def all_runs(self, table):
        from schemas.bigquery import physical_table

        return self.location.sql_name(physical_table(table))

    def query(self, sql):
        from warehouse.bigquery import query_arrow

        return [tuple(row.values()) for row in query_arrow(self.location, sql).to_pylist()]

    def finish(self) -> str:
        return str(self.location)


def open_warehouse(warehouse: str, run_id: str, *, bigquery_endpoint: str | None = None,
                   write_method: str = FILE_LOADS, temp_location: str | None = None,
                   statements_dir: str | None = None, pubsub_project: str | None = None,
                   topic_prefix: str = "") -> Sink:  # fmt: skip
    """The sink `--warehouse` names: `bq://PROJECT.DATASET` or an embedded warehouse directory."""
    if is_bigquery_uri(warehouse):
        location = BigQueryLocation.parse(warehouse, bigquery_endpoint)
        return BigQueryWarehouse(location, run_id, write_method, temp_location, statements_dir, pubsub_project,
                                 topic_prefix)  # fmt: skip
    return EmbeddedWarehouse(warehouse, run_id, pubsub_project, topic_prefix)


def open_tool_sink(warehouse: str, tool: str, bigquery_endpoint: str | None = None) -> Sink:
    """The sink of a tool's run (`<UTC time>-<tool>-<random>`, so two runs in one second stay
    apart), its tables ready to append to."""
    run_id = dt.datetime.now(dt.UTC).strftime(f"%Y%m%dT%H%M%SZ-{tool}-") + secrets.token_hex(3)
    sink = open_warehouse(warehouse, run_id, bigquery_endpoint=bigquery_endpoint)
    sink.prepare(truncate=False)
    return sink
