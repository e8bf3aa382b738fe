"""Table contracts: BigQuery schema JSON files and everything derived from them.

Each `schemas/<table>.json` is the single source of truth for one table, in the format
`bq mk --schema` takes. Arrow schemas (for the Parquet warehouse), row validation and the
DuckDB catalog are derived here, never written a second time.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMA_DIR = Path(__file__).resolve().parent

TABLES: tuple[str, ...] = (
    "media_scores",
    "enforcement_decisions",
    "enforcement_events",
    "features",
    "transparency_aggregates",
    "transparency_report",
    "statements_of_reasons",
    "strike_ledger",
    "appeals",
    "retraining_labels",
    "review_queue",
    "reviews",
    "bank_changes",
    "campaigns",
    "evasion_links",
    "decision_log",
    "shadow_decisions",
    "shadow_scores",
    "signal_health",
    "model_releases",
    "statement_submissions",
    "message_deliveries",
    "dead_letter",
)

# Tables the jobs read but do not write, when their input comes from BigQuery (`--input`,
# `--appeals` bq://...): upload events (the manifest's row, typed) and appeal outcomes.
INPUT_TABLES: tuple[str, ...] = ("upload_events", "appeal_outcomes")

# Tables that share another table's schema file: the published transparency report holds the
# same cells as each run's aggregates, recomputed over every run (pipelines/transparency.py).
SCHEMA_OF: dict[str, str] = {
    "transparency_report": "transparency_aggregates",
    "shadow_decisions": "enforcement_decisions",  # a shadow policy's decisions (`--shadow_policy`)
}

# The one type map: BigQuery type -> (Arrow type, DuckDB type, the Python types a row value may have).
TYPES: dict[str, tuple[pa.DataType, str, tuple[type, ...]]] = {
    "STRING": (pa.string(), "VARCHAR", (str,)),
    "JSON": (pa.string(), "VARCHAR", (str,)),
    "BYTES": (pa.binary(), "BLOB", (bytes,)),
    "INTEGER": (pa.int64(), "BIGINT", (int,)),
    "INT64": (pa.int64(), "BIGINT", (int,)),
    "FLOAT": (pa.float64(), "DOUBLE", (float, int)),
    "FLOAT64": (pa.float64(), "DOUBLE", (float, int)),
    "NUMERIC": (pa.float64(), "DOUBLE", (float, int)),
    "BOOLEAN": (pa.bool_(), "BOOLEAN", (bool,)),
    "BOOL": (pa.bool_(), "BOOLEAN", (bool,)),
    "TIMESTAMP": (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", (dt.datetime,)),
    "DATE": (pa.date32(), "DATE", (dt.date,)),
}


def duckdb_type(field: Mapping[str, Any]) -> str:
    """The DuckDB column type of a BigQuery schema field (a list type when it repeats)."""
    sql_type = TYPES[field["type"].upper()][1] if field["type"].upper() in TYPES else "VARCHAR"
    return sql_type + "[]" if field.get("mode", "").upper() == "REPEATED" else sql_type


class SchemaViolation(ValueError):
    """A row does not match its table's schema."""

    reason = "schema_violation"


@functools.cache
def bigquery_schema(table: str) -> tuple[dict[str, Any], ...]:
    """The BigQuery schema fields of `table`, as read from `schemas/<table>.json` (or the file of
    the table whose schema it shares, `SCHEMA_OF`)."""
    path = SCHEMA_DIR / f"{SCHEMA_OF.get(table, table)}.json"
    if not path.exists():
        raise KeyError(f"no schema file for table {table!r} ({path})")
    return tuple(json.loads(path.read_text()))


def column_descriptions(table: str) -> dict[str, str]:
    """Each top-level column's description from the schema file; a RECORD's names its fields'
    too (`account: ... created_at: ...; verified: ...`), for catalogs that describe columns only."""
    described = {}
    for field in bigquery_schema(table):
        text = field.get("description", "")
        if field.get("fields"):
            text += " Fields: " + "; ".join(f"{sub['name']}: {sub.get('description', '')}" for sub in field["fields"])
        described[field["name"]] = text
    return described


def _arrow_field(field: Mapping[str, Any]) -> pa.Field:
    bq_type = field["type"].upper()
    if bq_type in ("RECORD", "STRUCT"):
        arrow_type: pa.DataType = pa.struct([_arrow_field(f) for f in field["fields"]])
    else:
        arrow_type = TYPES[bq_type][0]
    mode = field.get("mode", "NULLABLE").upper()
    if mode == "REPEATED":
        # BigQuery has no NULL arrays: an absent repeated field reads as an empty list.
        return pa.field(field["name"], pa.list_(pa.field("item", arrow_type, nullable=False)), nullable=False)
    return pa.field(field["name"], arrow_type, nullable=mode != "REQUIRED")


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of `table`, derived from its BigQuery schema."""
    return pa.schema([_arrow_field(f) for f in bigquery_schema(table)])


def _check_value(table: str, field: Mapping[str, Any], value: Any) -> None:
    name, bq_type = field["name"], field["type"].upper()
    mode = field.get("mode", "NULLABLE").upper()
    if mode == "REPEATED":
        if not isinstance(value, (list, tuple)):
            raise SchemaViolation(f"{table}.{name}: expected a list, got {type(value).__name__}")
        for item in value:
            _check_scalar(table, name, bq_type, field, item)
        return
    if value is None:
        if mode == "REQUIRED":
            raise SchemaViolation(f"{table}.{name}: REQUIRED field is missing")
        return
    _check_scalar(table, name, bq_type, field, value)


def _check_scalar(table: str, name: str, bq_type: str, field: Mapping[str, Any], value: Any) -> None:
    if bq_type in ("RECORD", "STRUCT"):
        if not isinstance(value, Mapping):
            raise SchemaViolation(f"{table}.{name}: expected a record, got {type(value).__name__}")
        for sub in field["fields"]:
            _check_value(table, sub, value.get(sub["name"]))
        return
    allowed = TYPES[bq_type][2]
    # bool is an int in Python; a BOOLEAN in an INTEGER column is a bug, not a number.
    if isinstance(value, bool) and bool not in allowed:
        raise SchemaViolation(f"{table}.{name}: expected {bq_type}, got bool")
    if not isinstance(value, allowed):
        raise SchemaViolation(f"{table}.{name}: expected {bq_type}, got {type(value).__name__}")
    if bq_type == "TIMESTAMP" and value.tzinfo is None:
        raise SchemaViolation(f"{table}.{name}: TIMESTAMP must be timezone-aware")


def validate_row(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Checks `row` against the schema of `table` and returns it with columns in schema order.

    Raises:
        SchemaViolation: a column is unknown, a REQUIRED one is missing, or a value has the
            wrong type.
    """
    fields = bigquery_schema(table)
    known = {f["name"] for f in fields}
    unknown = set(row) - known
    if unknown:
        raise SchemaViolation(f"{table}: unknown columns {sorted(unknown)}")
    out: dict[str, Any] = {}
    for field in fields:
        mode = field.get("mode", "NULLABLE").upper()
        value = row.get(field["name"], [] if mode == "REPEATED" else None)
        _check_value(table, field, value)
        out[field["name"]] = list(value) if mode == "REPEATED" else value
    return out
