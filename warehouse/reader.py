"""Queries on a warehouse, embedded or BigQuery, with unqualified table names.

The same SQL text runs on both: DuckDB resolves names in the embedded catalog, BigQuery in the
dataset (its default dataset). `compliance=True` reads through the compliance views, which
carry no account identifiers: what the report runs on, as an analyst would. The `sql/*.sql`
queries name those views themselves (`compliance.transparency_report`), so they run as they
are in DuckDB's shell; on BigQuery that schema is the dataset's compliance dataset.
"""

from __future__ import annotations

import abc
import decimal
import re
import sys
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.bigquery import compliance_dataset
from warehouse.bigquery import BigQueryLocation, is_bigquery_uri, query_arrow
from warehouse.embedded import CATALOG_FILE, COMPLIANCE_SCHEMA, create_views

# A name qualified by the compliance schema: `compliance.transparency_report`.
COMPLIANCE_QUALIFIER = re.compile(rf"(?<![\w.`]){COMPLIANCE_SCHEMA}\.(?=\w)")


class WarehouseReader(abc.ABC):
    name: str

    @abc.abstractmethod
    def query(self, sql: str, compliance: bool = False) -> pa.Table:
        """The result of `sql` (table names unqualified)."""

    def rows(self, sql: str) -> list[dict]:
        """The result of `sql` as dicts, exact numbers as int or float (DuckDB sums integers
        into 128-bit decimals, which JSON and arithmetic with floats do not take)."""
        return [{k: plain_number(v) for k, v in row.items()} for row in self.query(sql).to_pylist()]


def newest_rows(table: str, moment: str, where: str = "", key: str = "content_id") -> str:
    """SQL for `table`'s rows (those matching `where`), one per `key`: the newest by `moment`,
    the latest run on a tie. The same text runs on DuckDB and BigQuery (`QUALIFY`)."""
    condition = f" WHERE {where}" if where else ""
    return (f"SELECT * FROM {table}{condition} QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} "
            f"ORDER BY {moment} DESC, run_id DESC) = 1")  # fmt: skip


def plain_number(value):
    """An exact number as int or float (DuckDB sums integers into 128-bit decimals)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class EmbeddedReader(WarehouseReader):
    """Reads through the catalog a job wrote when it finished; `live`: through views made for
    each query over the Parquet files there are now, so what a running job wrote since its
    start is read too (the bank's refresh)."""

    def __init__(self, directory: str, live: bool = False):
        self.catalog = Path(directory) / CATALOG_FILE
        if not self.catalog.exists():
            raise FileNotFoundError(f"{self.catalog} not found; run the batch job first")
        self.name, self.live = str(self.catalog), live

    def query(self, sql, compliance=False):
        with self._connect() as con:
            if compliance:
                con.execute(f"SET search_path = '{COMPLIANCE_SCHEMA}'")
            return con.sql(sql).to_arrow_table()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not self.live:
            return duckdb.connect(str(self.catalog), read_only=True)
        con = duckdb.connect()
        create_views(con, self.catalog.parent.resolve(), "memory")
        return con


class BigQueryReader(WarehouseReader):
    def __init__(self, location: BigQueryLocation):
        self.location, self.name = location, str(location)

    def query(self, sql, compliance=False):
        dataset = compliance_dataset(self.location.dataset) if compliance else self.location.dataset
        return query_arrow(self.location, self.qualified(sql), default_dataset=dataset)

    def qualified(self, sql: str) -> str:
        """`compliance.<view>` (the catalog's schema, as `sql/` names it) as this dataset's
        compliance dataset, where BigQuery keeps those views."""
        dataset = f"`{self.location.project}.{compliance_dataset(self.location.dataset)}`."
        return COMPLIANCE_QUALIFIER.sub(dataset, sql)


def open_reader(warehouse: str, bigquery_endpoint: str | None = None, live: bool = False) -> WarehouseReader:
    """The reader of `--warehouse` (a directory or `bq://PROJECT.DATASET`; `live`: see
    `EmbeddedReader`, BigQuery is always live); raises ValueError or FileNotFoundError with a
    message for the command line."""
    if is_bigquery_uri(warehouse):
        return BigQueryReader(BigQueryLocation.parse(warehouse, bigquery_endpoint))
    return EmbeddedReader(warehouse, live)


def duckdb_shell() -> str:
    """The DuckDB shell installed next to this Python, else whatever `duckdb` the PATH finds."""
    shell = Path(sys.prefix) / "bin" / "duckdb"
    return str(shell) if shell.exists() else "duckdb"


def query_hint(where: str, sql: str, table: str) -> str:
    """The command that runs `sql` (with `{}` for `table`) on a warehouse: DuckDB's shell on the
    embedded catalog, `bq query` on a BigQuery dataset (`bq://PROJECT.DATASET`)."""
    if is_bigquery_uri(where):
        name = "`" + BigQueryLocation.parse(where).table_id(table) + "`"
        return f'bq query --nouse_legacy_sql "{sql.format(name)}"'
    return f'{duckdb_shell()} {where} "{sql.format(table)}"'
