"""BigQuery as the warehouse: its tables and views, made from `schemas/` before a job writes.

    python -m tools.bigquery --warehouse bq://PROJECT.DATASET [--bigquery_endpoint URL]

creates (or brings up to date) the dataset, every table with its partitioning and clustering
(`schemas/bigquery_tables.json`), the one-row-per-id views, the current strike ledger and the
compliance dataset's views without account identifiers. The batch job does the same at
launch; Terraform (`infra/terraform`) does it in production from the same files.
"""

from __future__ import annotations

import sys

from pipelines.options import StrictParser, add_flags
from schemas.bigquery import compliance_dataset
from warehouse.bigquery import BigQueryLocation, create_tables


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.bigquery", description=__doc__.split("\n\n")[0])
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
