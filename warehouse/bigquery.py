"""BigQuery I/O for the jobs: table rows out through Beam's `WriteToBigQuery`, query rows in.

A `BigQueryLocation` names a dataset and, outside Google Cloud, the endpoint of a BigQuery-API
server (a local one on loopback in tests and `make demo-bigquery`). Beam's `WriteToBigQuery`
has no endpoint option, but takes a client (`test_client`); `EndpointClient` is that client,
serving both Beam's REST calls and the `google.cloud.bigquery` ones, built lazily on the
worker so it pickles. With no endpoint everything goes to Google with the worker's credentials.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import INPUT_TABLES, TABLES
from schemas.bigquery import compliance_dataset, physical_table, table_resource, view_queries
from transforms.dead_letter import make_dead_letter
from transforms.parse import record_row
from warehouse.embedded import ToWarehouseRows

URI_SCHEME = "bq://"
FILE_LOADS, STREAMING_INSERTS = "file_loads", "streaming_inserts"
WRITE_METHODS = (FILE_LOADS, STREAMING_INSERTS)
# The reason of a row BigQuery turned away when it says none.
REJECTED = "bigquery_rejected"


def is_bigquery_uri(value: str | None) -> bool:
    return bool(value) and value.startswith(URI_SCHEME)


@dataclasses.dataclass(frozen=True)
class BigQueryLocation:
    """A dataset (`bq://PROJECT.DATASET`) and the API endpoint that serves it (None: Google)."""

    project: str
    dataset: str
    endpoint: str | None = None

    @classmethod
    def parse(cls, uri: str, endpoint: str | None = None) -> BigQueryLocation:
        """`bq://PROJECT.DATASET` -> location; raises ValueError naming the expected form."""
        if not is_bigquery_uri(uri):
            raise ValueError(f"{uri!r} is not a BigQuery dataset (bq://PROJECT.DATASET)")
        project, dot, dataset = uri[len(URI_SCHEME) :].partition(".")
        if not project or not dot or not dataset or "." in dataset or "/" in dataset:
            raise ValueError(f"{uri!r}: expected bq://PROJECT.DATASET")
        return cls(project, dataset, endpoint.rstrip("/") if endpoint else None)

    def __str__(self) -> str:
        return f"{URI_SCHEME}{self.project}.{self.dataset}"

    def table_id(self, table: str, dataset: str | None = None) -> str:
        """`project.dataset.table` of a table or view, as SQL and the client name it."""
        return f"{self.project}.{dataset or self.dataset}.{table}"

    def sql_name(self, table: str, dataset: str | None = None) -> str:
        return f"`{self.table_id(table, dataset)}`"

    def client(self):
        """A `google.cloud.bigquery.Client` for this location."""
        from google.cloud import bigquery

        if self.endpoint is None:
            return bigquery.Client(project=self.project)
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )

    def beam_client(self) -> EndpointClient | None:
        """What `WriteToBigQuery(test_client=...)` takes: None means Google's own clients."""
        return None if self.endpoint is None else EndpointClient(self)


class EndpointClient:
    """Beam's BigQuery client pair for a non-Google endpoint: the apitools REST client
    (`tables`, `jobs`, `datasets`, `tabledata`) and the `google.cloud.bigquery` client
    (`insert_rows_json`, ...), created on first use so the object pickles to workers."""

    _REST = frozenset({"tables", "jobs", "datasets", "tabledata"})

    def __init__(self, location: BigQueryLocation):
        self._location = location
        self._rest = self._cloud = None

    def __getstate__(self):
        return {"_location": self._location, "_rest": None, "_cloud": None}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._REST:
            if self._rest is None:
                from apache_beam.io.gcp.internal.clients import bigquery as bigquery_api

                self._rest = bigquery_api.BigqueryV2(
                    url=self._location.endpoint + "/bigquery/v2/", get_credentials=False, credentials=None
                )
            return getattr(self._rest, name)
        if self._cloud is None:
            self._cloud = self._location.client()
        return getattr(self._cloud, name)


def json_value(value: Any) -> Any:
    """A row value as BigQuery's JSON row format has it (TIMESTAMP and DATE as ISO text, BYTES
    as base64), nested records and lists included."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {name: json_value(value) for name, value in row.items()}


def rejected_row(failure: tuple, table: str) -> Any:
    """A row BigQuery refused (`failed_rows_with_errors`: destination, row, errors) as its
    dead letter, with BigQuery's own reason and message."""
    _, row, errors = failure
    errors = errors if isinstance(errors, list) else [errors]
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    reason = first.get("reason") or REJECTED
    message = "; ".join(
        f"{e.get('location') or '-'}: {e.get('message') or e.get('reason')}" if isinstance(e, dict) else str(e)
        for e in errors
    )
    Metrics.counter("dead_letter", f"write_{table}").inc()
    return make_dead_letter(row, f"write_{table}", f"{REJECTED}:{reason}", "BigQueryInsertError", message)


class WriteBigQueryTable(beam.PTransform):
    """Records with `to_row()` -> validated rows -> one BigQuery table (created beforehand by
    `tools.bigquery.create_tables` from `schemas/*.json`, so never created here).

    `file_loads` (batch) stages JSON files and runs load jobs: free, atomic per job, and rows
    are checked against the same schema before they leave, so a load sees only rows it takes.
    `streaming_inserts` (streaming, and batch on request) sends rows with insert ids, which
    BigQuery uses to drop a retried row's second copy; the rows it refuses come back through
    `failed_rows_with_errors` and become dead letters carrying BigQuery's reason.
    Returns the dead letters.
    """

    def __init__(self, location: BigQueryLocation, table: str, run_id: str, method: str = FILE_LOADS,
                 truncate: bool = False, temp_location: str | None = None):  # fmt: skip
        super().__init__()
        if method not in WRITE_METHODS:
            raise ValueError(f"unknown BigQuery write method {method!r} (one of {WRITE_METHODS})")
        if truncate and method != FILE_LOADS:
            raise ValueError("replacing a table's rows needs file loads (WRITE_TRUNCATE)")
        self._location, self._table, self._run_id = location, table, run_id
        self._method, self._truncate, self._temp_location = method, truncate, temp_location

    def expand(self, records):
        rows, invalid = records | "ToRows" >> ToWarehouseRows(self._table, self._run_id)
        method = beam.io.WriteToBigQuery.Method
        resource = table_resource(self._table, self._location.project, self._location.dataset)
        write = beam.io.WriteToBigQuery(
            f"{self._location.project}:{self._location.dataset}.{physical_table(self._table)}",
            # The table's own schema and layout on every load, so a load that replaces the
            # table's rows (WRITE_TRUNCATE) keeps its types, partitioning and clustering.
            schema=resource["schema"],
            additional_bq_parameters={k: resource[k] for k in ("timePartitioning", "clustering")},
            method=method.FILE_LOADS if self._method == FILE_LOADS else method.STREAMING_INSERTS,
            create_disposition=beam.io.BigQueryDisposition.CREATE_NEVER,
            write_disposition=(
                beam.io.BigQueryDisposition.WRITE_TRUNCATE
                if self._truncate
                else beam.io.BigQueryDisposition.WRITE_APPEND
            ),
            insert_retry_strategy="RETRY_ON_TRANSIENT_ERROR",
            custom_gcs_temp_location=self._temp_location,
            validate=self._location.endpoint is None,
            test_client=self._location.beam_client(),
        )
        result = rows | "ToJson" >> beam.Map(json_row) | "WriteToBigQuery" >> write
        if self._method == FILE_LOADS:
            return invalid
        refused = result.failed_rows_with_errors | "RejectedRows" >> beam.Map(rejected_row, table=self._table)
        if invalid is None:  # the dead_letter table: nowhere further to send its own refusals
            _ = refused | "FailOnRefusedDeadLetters" >> beam.Map(_refuse_dead_letter)
            return None
        return (invalid, refused) | "Failures" >> beam.Flatten()


def _refuse_dead_letter(dead_letter) -> None:
    raise RuntimeError(f"BigQuery refused a dead_letter row: {dead_letter.error}")


class _RunQuery(beam.DoFn):
    """Runs one query and emits its rows as dicts (TIMESTAMP as aware datetimes, DATE as dates).

    Reads the result through the BigQuery Storage Read API (Arrow) on Google; a local API
    server has none, so there rows come page by page over REST.
    """

    def __init__(self, location: BigQueryLocation):
        self._location = location

    def setup(self):
        self._client = self._location.client()
        self._storage = None
        if self._location.endpoint is None:
            from google.cloud import bigquery_storage

            self._storage = bigquery_storage.BigQueryReadClient()
        self._rows = Metrics.counter("bigquery", "rows_read")

    def process(self, sql: str):
        result = self._client.query(sql).result()
        for batch in result.to_arrow_iterable(bqstorage_client=self._storage):
            for row in batch.to_pylist():
                self._rows.inc()
                yield row

    def teardown(self):
        self._client.close()


class QueryRows(beam.PTransform):
    """PBegin -> the rows of one BigQuery standard SQL query, spread over the workers."""

    def __init__(self, location: BigQueryLocation, sql: str):
        super().__init__()
        self._location, self._sql = location, sql

    def expand(self, pipeline):
        return (
            pipeline
            | "Query" >> beam.Create([self._sql])
            | "RunQuery" >> beam.ParDo(_RunQuery(self._location))
            | "Spread" >> beam.Reshuffle()
        )


def query_arrow(location: BigQueryLocation, sql: str, params: dict[str, str] | None = None,
                default_dataset: str | None = None):  # fmt: skip
    """The whole result of a query as one Arrow table (launch-time and report reads); `params`
    are STRING query parameters (`@name`), `default_dataset` resolves unqualified table names."""
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(k, "STRING", v) for k, v in (params or {}).items()],
        default_dataset=f"{location.project}.{default_dataset}" if default_dataset else None,
    )
    with location.client() as client:
        kwargs = {"create_bqstorage_client": False} if location.endpoint else {}
        return client.query(sql, job_config=config).result().to_arrow(**kwargs)


@dataclasses.dataclass(frozen=True)
class BigQuerySource:
    """Input rows (upload events, appeals) from a BigQuery table or query."""

    location: BigQueryLocation
    sql: str
    name: str  # what a dead letter names as the row's source

    @classmethod
    def table(cls, uri: str, endpoint: str | None = None) -> BigQuerySource:
        """`bq://PROJECT.DATASET.TABLE` -> every row of that table."""
        parts = uri[len(URI_SCHEME) :].split(".") if is_bigquery_uri(uri) else []
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{uri!r}: expected bq://PROJECT.DATASET.TABLE")
        location = BigQueryLocation(parts[0], parts[1], endpoint)
        return cls(location, f"SELECT * FROM {location.sql_name(parts[2])}", uri)

    @classmethod
    def query(cls, sql: str, project: str, endpoint: str | None = None) -> BigQuerySource:
        return cls(BigQueryLocation(project, "", endpoint), sql, f"{URI_SCHEME}{project} query")


class ReadBigQueryRows(beam.PTransform):
    """PBegin -> the source's rows as `RawRow`s (records), like a Parquet manifest's."""

    def __init__(self, source: BigQuerySource):
        super().__init__()
        self._source = source

    def expand(self, pipeline):
        return (
            pipeline
            | "QueryRows" >> QueryRows(self._source.location, self._source.sql)
            | "AsRawRows" >> beam.Map(record_row, source=self._source.name)
        )


# --- The dataset's tables and views, made from schemas/ before a job writes -------------


def _table(resource: dict):
    from google.cloud import bigquery

    return bigquery.Table.from_api_repr(resource)


# A view made by `create_tables` carries the digest of its query as a label, so a later run
# knows from the dataset's listing that it is up to date (a view made elsewhere, by Terraform,
# is looked up and compared instead).
VIEW_QUERY_LABEL = "query_sha256"


def create_tables(location: BigQueryLocation, truncate: bool = False) -> list[str]:
    """Creates the datasets, tables and views that are missing, and brings a view whose query
    changed up to date (with `truncate`, every table the jobs write is dropped and made again,
    empty); returns what it created or changed. Where Terraform made them all, it only reads,
    so the job's service account needs no right to create datasets."""
    from google.cloud import bigquery

    not_found = _not_found()
    changed = []
    with location.client() as client:
        for dataset in (location.dataset, compliance_dataset(location.dataset)):
            try:
                client.get_dataset(f"{location.project}.{dataset}")
            except not_found:
                client.create_dataset(bigquery.Dataset(f"{location.project}.{dataset}"), exists_ok=True)
                changed.append(f"{location.project}.{dataset}")
        # A listing of each dataset instead of a lookup per table: some fifty fewer calls a run.
        listed = {
            f"{item.dataset_id}.{item.table_id}": item
            for dataset in (location.dataset, compliance_dataset(location.dataset))
            for item in client.list_tables(f"{location.project}.{dataset}")
        }
        for table in (*TABLES, *INPUT_TABLES):
            table_id = location.table_id(physical_table(table))
            if truncate and table in TABLES:  # the job's own tables; never its inputs
                client.delete_table(table_id, not_found_ok=True)
                listed.pop(f"{location.dataset}.{physical_table(table)}", None)
            if f"{location.dataset}.{physical_table(table)}" not in listed:
                client.create_table(_table(table_resource(table, location.project, location.dataset)), exists_ok=True)
                changed.append(table_id)
        for name, sql in view_queries(location.project, location.dataset).items():
            view_id = f"{location.project}.{name}"
            digest = hashlib.sha256(sql.encode()).hexdigest()[:32]
            if name in listed:
                if (listed[name].labels or {}).get(VIEW_QUERY_LABEL) == digest:
                    continue  # made here from this query: the listing says so, no lookup
                try:
                    if client.get_table(view_id).view_query == sql:
                        continue
                    client.delete_table(view_id)
                except not_found:
                    pass
            view = bigquery.Table(view_id)
            view.view_query = sql
            view.labels = {VIEW_QUERY_LABEL: digest}
            client.create_table(view)
            changed.append(view_id)
    return changed


def _not_found():
    from google.api_core.exceptions import NotFound

    return NotFound


def count_rows(location: BigQueryLocation, table: str) -> int:
    """Rows stored for `table` over every run (0 when the table does not exist yet)."""
    try:
        result = query_arrow(location, f"SELECT COUNT(*) AS n FROM {location.sql_name(physical_table(table))}")
    except _not_found():
        return 0
    return int(result.column("n")[0].as_py())
