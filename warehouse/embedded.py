"""The embedded warehouse: Parquet files per table written by Beam, a DuckDB catalog over them.

Layout of `--warehouse DIR`:
  DIR/<table>/<run_id>-SSSSS-of-NNNNN.parquet   one file set per job run and table
  DIR/features_tfrecord/<run_id>-*.tfrecord.gz   training examples (tf.train.Example)
  DIR/statements_of_reasons_batches/<run_id>-*.json   Transparency Database API bodies, <= 100 each
  DIR/warehouse.duckdb                           a view per table over its Parquet files, and
                                                 strike_ledger_current (every run's strikes, once)

Arrow schemas come from `schemas/*.json`; every row is validated against its table's schema
before it is written, so a Parquet file can be loaded into BigQuery as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import uuid
from pathlib import Path

import apache_beam as beam
import duckdb
import pyarrow as pa

from models.examples import to_tf_example
from models.signature import FEATURE_VERSION
from schemas import TABLES, arrow_schema, bigquery_schema, column_descriptions, duckdb_type, validate_row
from schemas.bigquery import CURRENT_LEDGER_VIEW, ONE_ROW_PER, compliance_views, current_ledger_sql
from schemas.records import MediaFeatures
from transforms.dead_letter import MapOrDeadLetter

CATALOG_FILE = "warehouse.duckdb"
CATALOG_STORAGE_VERSION = "v1.4.0"
TFRECORD_DIR = "features_tfrecord"
STATEMENT_BATCH_DIR = "statements_of_reasons_batches"
DEAD_LETTER_TABLE = "dead_letter"
COMPLIANCE_SCHEMA = "compliance"  # the catalog's schema of compliance views
# Tables whose rows carry a stable id: their catalog view keeps one row per id across runs and
# `<table>_all_runs` every run's copy (the rule is declared in `schemas.bigquery.ONE_ROW_PER`).


def table_prefix(warehouse: str, table: str, run_id: str) -> str:
    return str(Path(warehouse) / table / run_id)


def _staged_path(prefix: str) -> str:
    """Where a bundle's file is written before it is linked into place under `prefix`."""
    return f"{prefix}.{uuid.uuid4().hex}.tmp"


def run_files(warehouse: str | Path, run_id: str) -> list[Path]:
    """Every file run `run_id` left in an embedded warehouse: each table's and its training
    examples', with those a stopped run had staged and not yet linked into place."""
    root = Path(warehouse)
    found = {*root.glob(f"*/{run_id}-*"), *root.glob(f"*/{run_id}.*.tmp")}
    return sorted(path for path in found if path.is_file())


def clear_tables(warehouse: str) -> None:
    """Removes every table's files (a truncating run), leaving anything else in DIR alone."""
    for name in (*TABLES, TFRECORD_DIR, STATEMENT_BATCH_DIR):
        shutil.rmtree(Path(warehouse) / name, ignore_errors=True)


def warehouse_row(record, table: str, run_id: str) -> dict:
    """A record's row of `table`, stamped with the run that writes it and checked against the
    table's schema (raises `SchemaViolation`)."""
    row = record.to_row(FEATURE_VERSION) if isinstance(record, MediaFeatures) else record.to_row()
    return validate_row(table, {**row, "run_id": run_id})


class ToWarehouseRows(beam.PTransform):
    """Records with `to_row()` -> validated rows of one table, for any warehouse.

    Returns `(rows, dead letters)`: a record whose row breaks the table's schema is its own
    dead letter (step `write_<table>`, reason `schema_violation`) and the rest go on. The
    `dead_letter` table itself has nowhere further to send a bad row, so there a bad row fails
    the job (and the dead letters are None).
    """

    def __init__(self, table: str, run_id: str):
        super().__init__()
        self._table, self._run_id = table, run_id

    def expand(self, records):
        kwargs = {"table": self._table, "run_id": self._run_id}
        if self._table == DEAD_LETTER_TABLE:
            return records | "ToRows" >> beam.Map(warehouse_row, **kwargs), None
        return records | "ToRows" >> MapOrDeadLetter(warehouse_row, f"write_{self._table}", **kwargs)


class _WritePerBundle(beam.DoFn):
    """Each bundle's records as one file (`<prefix>-SSSSS-of-99999<suffix>`, the shard number
    drawn until free), written aside as they come and linked into place whole, so a reader
    never sees half a file. A stream needs no window to hold a record back; a batch run needs
    none of the sharding, grouping and finalising steps of Beam's file sinks (a dozen
    transforms and four stages a table, most of a small job's cost). A bundle with no record
    writes no file."""

    def __init__(self, prefix: str, suffix: str):
        self._prefix, self._suffix = prefix, suffix

    def _open(self, path: str) -> None:
        raise NotImplementedError

    def _write(self, record) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def start_bundle(self):
        self._staged = None

    def process(self, record):
        if self._staged is None:
            Path(self._prefix).parent.mkdir(parents=True, exist_ok=True)
            self._staged = _staged_path(self._prefix)
            self._open(self._staged)
        self._write(record)

    def finish_bundle(self):
        if self._staged is None:
            return
        self._close()
        while True:
            final = f"{self._prefix}-{secrets.randbelow(99999):05d}-of-99999{self._suffix}"
            try:
                os.link(self._staged, final)
                break
            except FileExistsError:
                continue
        os.unlink(self._staged)
        self._staged = None


class _WriteParquetPerBundle(_WritePerBundle):
    """A table's rows, a row group every `_GROUP_ROWS` rows (a bundle of feature rows, which
    carry tensors, is never held whole)."""

    _GROUP_ROWS = 256

    def __init__(self, prefix: str, table: str):
        super().__init__(prefix, ".parquet")
        self._table = table

    def _open(self, path):
        import pyarrow.parquet as pq

        self._schema = arrow_schema(self._table)
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        self._rows = []

    def _write(self, row):
        self._rows.append(row)
        if len(self._rows) >= self._GROUP_ROWS:
            self._flush()

    def _flush(self):
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def _close(self):
        self._flush()
        self._writer.close()


class _WriteTFRecordPerBundle(_WritePerBundle):
    """Serialised `tf.train.Example`s, gzipped."""

    def __init__(self, prefix: str):
        super().__init__(prefix, ".tfrecord.gz")

    def _open(self, path):
        import tensorflow as tf

        self._writer = tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP"))

    def _write(self, example: bytes):
        self._writer.write(example)

    def _close(self):
        self._writer.close()


class WriteTable(beam.PTransform):
    """Records with `to_row()` -> validated rows -> Parquet files of one warehouse table;
    returns the dead letters of `ToWarehouseRows`."""

    def __init__(self, warehouse: str, table: str, run_id: str):
        super().__init__()
        self._warehouse, self._table, self._run_id = warehouse, table, run_id

    def expand(self, records):
        rows, failures = records | "ToRows" >> ToWarehouseRows(self._table, self._run_id)
        _ = rows | "WriteParquetPerBundle" >> beam.ParDo(
            _WriteParquetPerBundle(table_prefix(self._warehouse, self._table, self._run_id), self._table)
        )
        return failures


class ReadTableRows(beam.PTransform):
    """Rows (dicts) of the given warehouse Parquet files, only `columns` when given (a table of
    tensors read for its ids); nothing when there are none."""

    def __init__(self, files: tuple[str, ...], columns: tuple[str, ...] | None = None):
        super().__init__()
        self._files, self._columns = tuple(files), columns

    def expand(self, pipeline):
        if not self._files:
            return pipeline | "NoFiles" >> beam.Create([])
        read = beam.io.ReadAllFromParquet(columns=list(self._columns) if self._columns else None)
        return pipeline | "ListFiles" >> beam.Create(self._files) | "Read" >> read


class WriteTrainingExamples(beam.PTransform):
    """MediaFeatures -> gzipped TFRecord of `tf.train.Example` in the model's input layout.

    Returns the dead letters of items that cannot be laid out (step `write_training_examples`)."""

    def __init__(self, warehouse: str, run_id: str):
        super().__init__()
        self._prefix = table_prefix(warehouse, TFRECORD_DIR, run_id)

    def expand(self, features):
        examples, failures = features | "ToExamples" >> MapOrDeadLetter(to_tf_example, "write_training_examples")
        _ = examples | "WriteTFRecordPerBundle" >> beam.ParDo(_WriteTFRecordPerBundle(self._prefix))
        return failures


def table_files(warehouse: str, table: str) -> tuple[str, ...]:
    """Every run's Parquet files of one table, in name order (empty when it has none)."""
    return tuple(sorted(str(path) for path in (Path(warehouse) / table).glob("*.parquet")))


def all_runs_relation(warehouse: str, table: str, filename: bool = False) -> str | None:
    """DuckDB's relation over every run's Parquet files of `table` (each row's file name too,
    with `filename`); None while the table has none."""
    if not table_files(warehouse, table):
        return None
    pattern = str(Path(warehouse).resolve() / table / "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}', union_by_name = true{', filename = true' if filename else ''})"


def empty_select(table: str) -> str:
    columns = []
    for field in bigquery_schema(table):
        columns.append(f'CAST(NULL AS {duckdb_type(field)}) AS "{field["name"]}"')
    return f"SELECT {', '.join(columns)} WHERE false"


def create_views(con: duckdb.DuckDBPyConnection, root: Path, database: str) -> None:
    """The catalog's views over the Parquet files under `root`, as they are now, in `database`
    (the catalog file attached, or an in-memory connection's own database)."""
    for table in TABLES:
        relation = all_runs_relation(str(root), table)
        body = f"SELECT * FROM {relation}" if relation else empty_select(table)
        if table not in ONE_ROW_PER:
            con.execute(f'CREATE OR REPLACE VIEW {database}.main."{table}" AS {body}')
            continue
        # Every run's rows stay readable; the table itself holds each id once, so no count
        # doubles on a rerun.
        con.execute(f'CREATE OR REPLACE VIEW {database}.main."{table}_all_runs" AS {body}')
        if relation:
            key, moment, outcome = ONE_ROW_PER[table]
            outcome_columns = ", ".join(f'"{c}"' for c in (key, *outcome))
            one = (
                "SELECT * EXCLUDE (filename, first_of_outcome) FROM ("
                f'SELECT *, row_number() OVER (PARTITION BY {outcome_columns} ORDER BY "{moment}", filename) '
                f"AS first_of_outcome FROM {all_runs_relation(str(root), table, filename=True)}) "
                f'WHERE first_of_outcome = 1 QUALIFY row_number() OVER (PARTITION BY "{key}" '
                f'ORDER BY "{moment}" DESC, filename DESC) = 1'
            )
        else:
            one = body
        con.execute(f'CREATE OR REPLACE VIEW {database}.main."{table}" AS {one}')
    # Each run writes the ledger of the accounts it changed (batch: every account's): the
    # current ledger is every strike of every run once, its reversed copy standing.
    ledger = all_runs_relation(str(root), "strike_ledger")
    body = current_ledger_sql(ledger) if ledger else empty_select("strike_ledger")
    con.execute(f"CREATE OR REPLACE VIEW {database}.main.{CURRENT_LEDGER_VIEW} AS {body}")
    # What a compliance analyst reads: the same views without account identifiers
    # (`schemas/compliance_views.json`), in their own schema.
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{COMPLIANCE_SCHEMA}")
    for table, spec in compliance_views()["views"].items():
        drop = ", ".join(f'"{c}"' for c in spec["drop"])
        columns = f"* EXCLUDE ({drop})" if drop else "*"
        con.execute(
            f'CREATE OR REPLACE VIEW {database}.{COMPLIANCE_SCHEMA}."{table}" AS '
            f'SELECT {columns} FROM {database}.main."{table}"'
        )


def write_catalog(warehouse: str) -> Path:
    """(Re)creates DIR/warehouse.duckdb with one view per table over its Parquet files (one row
    per id for the tables in `ONE_ROW_PER`, with every run's rows in `<table>_all_runs`).

    Views name absolute paths, so the catalog answers from any working directory; a table
    with no files yet is an empty view with the table's columns. A view reads its table's
    files by pattern, so files written later need no new catalog: one whose views and column
    descriptions would come out the same (their digest beside it) is kept as it is, since
    describing every column is most of a catalog's cost (about 0.8 s).
    """
    root = Path(warehouse).resolve()
    catalog, stamp = root / CATALOG_FILE, root / f".{CATALOG_FILE}.sha256"
    root.mkdir(parents=True, exist_ok=True)
    planned = _Statements()
    create_views(planned, root, "warehouse")
    described = {table: column_descriptions(table) for table in TABLES}
    digest = hashlib.sha256(json.dumps([CATALOG_STORAGE_VERSION, planned, described]).encode()).hexdigest()
    if catalog.exists() and stamp.exists() and stamp.read_text() == digest:
        return catalog
    stamp.unlink(missing_ok=True)
    catalog.unlink(missing_ok=True)  # views only: made again whole, so stale ones go
    with duckdb.connect() as con:
        # An older storage version, so the DuckDB CLI (packaged separately, a release behind)
        # and other tools can open the catalog too.
        path = str(catalog).replace("'", "''")
        con.execute(f"ATTACH '{path}' AS warehouse (STORAGE_VERSION '{CATALOG_STORAGE_VERSION}')")
        for statement in planned:  # the views the digest is of
            con.execute(statement)
        describe_columns(con, described)  # the descriptions the digest is of
    stamp.write_text(digest)
    return catalog


class _Statements(list):
    """Takes down the statements `create_views` would run, instead of running them."""

    def execute(self, sql: str) -> None:
        self.append(sql)


def describe_columns(con: duckdb.DuckDBPyConnection, described: dict[str, dict[str, str]]) -> None:
    """Every column of every view in the catalog gets its description (`described`: each
    table's `column_descriptions` from `schemas/`), as BigQuery's tables do: `SELECT
    column_name, comment FROM duckdb_columns()` reads them."""
    views = con.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = 'warehouse'").fetchall()
    columns = {
        (schema, view): {name for (name,) in con.sql(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'warehouse' AND schema_name = ? "
            "AND table_name = ?", params=[schema, view]).fetchall()}
        for schema, view in views
    }  # fmt: skip
    for (schema, view), names in columns.items():
        table = view.removesuffix("_all_runs")
        table = "strike_ledger" if table == CURRENT_LEDGER_VIEW else table
        if table not in TABLES:
            continue
        for name, text in described[table].items():
            if name in names and text:
                quoted = text.replace("'", "''")
                con.execute(f'COMMENT ON COLUMN warehouse."{schema}"."{view}"."{name}" IS \'{quoted}\'')


def parquet_run_counts(warehouse: str, table: str, run_id: str, columns: str) -> tuple[tuple, ...]:
    """(columns..., count) rows of what run `run_id` wrote to an embedded warehouse's `table`,
    ordered; () if nothing."""
    files = sorted((Path(warehouse) / table).glob(f"{run_id}-*.parquet"))
    if not files:
        return ()
    listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    query = f"SELECT {columns}, count(*) FROM read_parquet({listing}) GROUP BY ALL ORDER BY {columns}"
    with duckdb.connect() as con:
        return tuple(tuple(row) for row in con.sql(query).fetchall())
