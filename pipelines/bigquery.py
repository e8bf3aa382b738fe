"""BigQuery as the warehouse: its tables and views, made from `schemas/` before a job writes.

    python -m pipelines.bigquery --warehouse bq://PROJECT.DATASET [--bigquery_endpoint URL]

creates (or brings up to date) the dataset, every table with its partitioning and clustering
(`schemas/bigquery_tables.json`), the one-row-per-id views, the current strike ledger and the
compliance dataset's views without account identifiers. The batch job does the same at
launch; Terraform (`infra/terraform`) does it in production from the same files.
"""

from __future__ import annotations

import sys

from pipelines.options import StrictParser, add_flags
from schemas import INPUT_TABLES, TABLES
from schemas.bigquery import compliance_dataset, physical_table, table_resource, view_queries
from transforms.bigquery import BigQueryLocation


def _table(resource: dict):
    from google.cloud import bigquery

    return bigquery.Table.from_api_repr(resource)


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
        for table in (*TABLES, *INPUT_TABLES):
            table_id = location.table_id(physical_table(table))
            if truncate and table in TABLES:  # the job's own tables; never its inputs
                client.delete_table(table_id, not_found_ok=True)
            try:
                client.get_table(table_id)
            except not_found:
                client.create_table(_table(table_resource(table, location.project, location.dataset)))
                changed.append(table_id)
        for name, sql in view_queries(location.project, location.dataset).items():
            view_id = f"{location.project}.{name}"
            try:
                if client.get_table(view_id).view_query == sql:
                    continue
                client.delete_table(view_id)
            except not_found:
                pass
            view = bigquery.Table(view_id)
            view.view_query = sql
            client.create_table(view)
            changed.append(view_id)
    return changed


def _not_found():
    from google.api_core.exceptions import NotFound

    return NotFound


def count_rows(location: BigQueryLocation, table: str) -> int:
    """Rows stored for `table` over every run (0 when the table does not exist yet)."""
    from transforms.bigquery import query_arrow

    try:
        result = query_arrow(location, f"SELECT COUNT(*) AS n FROM {location.sql_name(physical_table(table))}")
    except _not_found():
        return 0
    return int(result.column("n")[0].as_py())


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m pipelines.bigquery", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    args = parser.parse_args(argv)
    try:
        location = BigQueryLocation.parse(args.warehouse, args.bigquery_endpoint)
    except ValueError as exc:
        parser.error(f"--warehouse: {exc}")
    created = create_tables(location)
    print(
        f"{location}: {len(created)} tables created, views and compliance views ({compliance_dataset(location.dataset)}) made"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run())
