"""BigQuery tables and views, derived from `schemas/*.json` and two layout files.

* `schemas/bigquery_tables.json`: per table, its time partitioning and clustering and the query
  that drove the choice, and (`physical_table`) where a table's rows are stored when readers see
  it through a one-row-per-id view.
* `schemas/compliance_views.json`: the views a compliance analyst is granted, in their own
  dataset, without account identifiers.

The batch job (`tools.bigquery`) and the Terraform (`infra/terraform`, through
`python -m schemas.bigquery`) create the same tables and views from here, nothing restated.

    python -m schemas.bigquery > infra/terraform/views.json   # view SQL with placeholders
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

from schemas import INPUT_TABLES, SCHEMA_DIR, TABLES, bigquery_schema

# Tables whose readers see one row per id (the rule of both warehouses' views): table -> (id
# column, time column, the columns that make an outcome). Kept here, beside the view SQL both
# warehouses build from it.
ONE_ROW_PER: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "enforcement_decisions": ("decision_id", "decided_at", ("action", "rule_id")),
    "enforcement_events": ("event_id", "emitted_at", ("action",)),
    "statements_of_reasons": ("sor_id", "application_date", ("category", "automated_decision")),
    "appeals": ("appeal_id", "appeal_decided_at", ("outcome",)),
    "review_queue": ("review_id", "queued_at", ("queue",)),
    "reviews": ("review_id", "reviewed_at", ("verdict_action",)),
    "bank_changes": ("change_id", "changed_at", ("change",)),
    "campaigns": ("campaign_id", "found_at", ("member_count",)),
    "evasion_links": ("link_id", "found_at", ("suspended_account_id",)),
    "decision_log": ("log_id", "changed_at", ("change",)),
    "shadow_decisions": ("decision_id", "decided_at", ("action", "rule_id")),
    "statement_submissions": ("submission_id", "submitted_at", ("status",)),
}
CURRENT_LEDGER_VIEW = "strike_ledger_current"
PROJECT_PLACEHOLDER, DATASET_PLACEHOLDER = "__PROJECT__", "__DATASET__"


@functools.cache
def table_layouts() -> dict[str, dict[str, Any]]:
    layouts = json.loads((SCHEMA_DIR / "bigquery_tables.json").read_text())
    missing = {*TABLES, *INPUT_TABLES} - set(layouts)
    if missing:
        raise KeyError(f"schemas/bigquery_tables.json has no layout for {sorted(missing)}")
    return layouts


@functools.cache
def compliance_views() -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / "compliance_views.json").read_text())


def physical_table(table: str) -> str:
    """Where `table`'s rows are stored: `<table>_all_runs` when readers see it through a
    one-row-per-id view named `table`, else `table` itself."""
    return table_layouts()[table].get("physical_table", table)


def compliance_dataset(dataset: str) -> str:
    return dataset + compliance_views()["dataset_suffix"]


def table_resource(table: str, project: str, dataset: str) -> dict[str, Any]:
    """The BigQuery REST `Table` resource that stores `table` (schema, partitioning, clustering)."""
    layout = table_layouts()[table]
    return {
        "tableReference": {"projectId": project, "datasetId": dataset, "tableId": physical_table(table)},
        "schema": {"fields": [dict(field) for field in bigquery_schema(table)]},
        "timePartitioning": dict(layout["time_partitioning"]),
        "clustering": {"fields": list(layout["clustering"])},
        "description": layout["why"],
    }


def _one_row_per_id(table: str, source: str) -> str:
    key, moment, outcome = ONE_ROW_PER[table]
    outcome_columns = ", ".join((key, *outcome))
    # Of an id's copies the newest outcome stands, dated when that outcome was first recorded
    # (a rerun re-emits the same row later, which is not when anything was done).
    return (
        f"SELECT * EXCEPT (first_of_outcome) FROM (SELECT *, ROW_NUMBER() OVER "
        f"(PARTITION BY {outcome_columns} ORDER BY {moment}, run_id) AS first_of_outcome FROM {source}) "
        f"WHERE first_of_outcome = 1 QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {moment} DESC, "
        "run_id DESC) = 1"
    )


def current_ledger_sql(source: str, bigquery: bool = False) -> str:
    """The current strike ledger over every run's rows in `source`: each strike once, its
    reversed copy standing (a strike is only ever reversed), as `enforcement.strikes.merge_ledger`
    keeps it. A run writes the ledger of the accounts it changed, so no one run holds it all."""
    exclude = "EXCEPT" if bigquery else "EXCLUDE"
    return (
        f"SELECT * {exclude} (copy) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY strike_id "
        f"ORDER BY reversed_at IS NULL, reversed_at, run_id) AS copy FROM {source}) WHERE copy = 1"
    )


def view_queries(project: str, dataset: str) -> dict[str, str]:
    """Every view, by `dataset.view` name, as BigQuery standard SQL: the one-row-per-id views,
    the current strike ledger, and the compliance views in `compliance_dataset(dataset)`."""
    qualified = functools.partial("`{}.{}.{}`".format, project, dataset)
    views = {f"{dataset}.{table}": _one_row_per_id(table, qualified(physical_table(table))) for table in ONE_ROW_PER}
    views[f"{dataset}.{CURRENT_LEDGER_VIEW}"] = current_ledger_sql(qualified("strike_ledger"), bigquery=True)
    for table, spec in compliance_views()["views"].items():
        drop = ", ".join(spec["drop"])
        columns = f"* EXCEPT ({drop})" if drop else "*"
        views[f"{compliance_dataset(dataset)}.{table}"] = f"SELECT {columns} FROM {qualified(table)}"
    return views


def main() -> int:
    """Prints the view SQL with placeholders for project and dataset (what Terraform reads)."""
    views = view_queries(PROJECT_PLACEHOLDER, DATASET_PLACEHOLDER)
    print(json.dumps(views, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
