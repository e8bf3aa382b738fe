# The warehouse in BigQuery, derived from the repository's table contracts (schemas/), never
# restated here: the tables and their layout from schemas/bigquery_tables.json, each table's
# columns from schemas/<table>.json, the views from views.json, which
# `python -m schemas.bigquery > infra/terraform/views.json` writes (tests/test_infra.py fails
# when it is stale).

locals {
  schema_dir = "${path.module}/../../schemas"
  # table -> time_partitioning, clustering, why and, for tables read through a one-row-per-id
  # view, physical_table (where the rows are stored).
  tables = jsondecode(file("${local.schema_dir}/bigquery_tables.json"))
  # Tables that share another table's schema file, as schemas.SCHEMA_OF says.
  schema_of          = { transparency_report = "transparency_aggregates", shadow_decisions = "enforcement_decisions" }
  compliance_layout  = jsondecode(file("${local.schema_dir}/compliance_views.json"))
  compliance_dataset = "${var.dataset}${local.compliance_layout.dataset_suffix}"

  # "DATASET.VIEW" -> SQL with __PROJECT__ and __DATASET__ placeholders.
  views = {
    for name, sql in jsondecode(file("${path.module}/views.json")) : name => {
      dataset_id = replace(split(".", name)[0], "__DATASET__", var.dataset)
      view_id    = split(".", name)[1]
      query      = replace(replace(sql, "__PROJECT__", var.project), "__DATASET__", var.dataset)
    }
  }
  main_views       = { for view in values(local.views) : view.view_id => view if view.dataset_id == var.dataset }
  compliance_views = { for view in values(local.views) : view.view_id => view if view.dataset_id == local.compliance_dataset }
}

resource "google_bigquery_dataset" "main" {
  project                    = var.project
  dataset_id                 = var.dataset
  location                   = var.region
  description                = "Deepfake detection warehouse: scores, decisions, enforcement events, statements of reasons, strikes, appeals, transparency."
  delete_contents_on_destroy = false

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "table" {
  for_each = local.tables

  project     = var.project
  dataset_id  = google_bigquery_dataset.main.dataset_id
  table_id    = lookup(each.value, "physical_table", each.key)
  description = each.value.why
  schema      = file("${local.schema_dir}/${lookup(local.schema_of, each.key, each.key)}.json")
  clustering  = each.value.clustering

  time_partitioning {
    type  = each.value.time_partitioning.type
    field = each.value.time_partitioning.field
  }

  # A schema change BigQuery cannot apply in place would replace the table, and its rows with it.
  deletion_protection = var.deletion_protection
}

# One row per id (enforcement_decisions over enforcement_decisions_all_runs, ...) and the
# current strike ledger.
resource "google_bigquery_table" "view" {
  for_each = local.main_views

  project    = var.project
  dataset_id = google_bigquery_dataset.main.dataset_id
  table_id   = each.key

  view {
    query          = each.value.query
    use_legacy_sql = false
  }

  # A view holds no rows: replacing one loses nothing.
  deletion_protection = false

  depends_on = [google_bigquery_table.table]
}

# What compliance analysts read: the tables and views without account identifiers
# (schemas/compliance_views.json), in a dataset of their own.
resource "google_bigquery_dataset" "compliance" {
  project                    = var.project
  dataset_id                 = local.compliance_dataset
  location                   = var.region
  description                = "Authorized views over ${var.dataset} for compliance analysts: no account identifiers."
  delete_contents_on_destroy = false

  lifecycle {
    precondition {
      condition     = length(local.main_views) + length(local.compliance_views) == length(local.views)
      error_message = "Every view of views.json belongs in ${var.dataset} or ${local.compliance_dataset}."
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "compliance_view" {
  for_each = local.compliance_views

  project    = var.project
  dataset_id = google_bigquery_dataset.compliance.dataset_id
  table_id   = each.key

  view {
    query          = each.value.query
    use_legacy_sql = false
  }

  deletion_protection = false

  # Some read the one-row-per-id views of the main dataset, all read its tables.
  depends_on = [google_bigquery_table.table, google_bigquery_table.view]
}

# Authorized views: each compliance view reads the main dataset on the analysts' behalf, so the
# analysts need (and get) no access to the main dataset itself.
resource "google_bigquery_dataset_access" "compliance_view" {
  for_each = google_bigquery_table.compliance_view

  project    = var.project
  dataset_id = google_bigquery_dataset.main.dataset_id

  view {
    project_id = var.project
    dataset_id = each.value.dataset_id
    table_id   = each.value.table_id
  }
}

resource "google_bigquery_dataset_iam_member" "compliance_analysts" {
  project    = var.project
  dataset_id = google_bigquery_dataset.compliance.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = "group:${var.compliance_analysts}"
}
