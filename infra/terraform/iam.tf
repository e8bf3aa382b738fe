# The one identity the jobs run as, with the least it needs: project-wide only what has no
# narrower scope (running Dataflow work, BigQuery jobs and read sessions), everything else on
# the one dataset, topic, subscription, bucket or repository it concerns.

resource "google_service_account" "worker" {
  project      = var.project
  account_id   = var.worker_account_id
  display_name = "Deepfake detection Dataflow jobs"
  description  = "Dataflow workers and flex template launches of pipelines.batch and the streaming job."

  depends_on = [google_project_service.enabled]
}

locals {
  worker = "serviceAccount:${google_service_account.worker.email}"
  # BigQuery jobs (load jobs, queries) and Storage Read API sessions are created in a project,
  # not in a dataset: what they may touch is still limited by the dataset grants below.
  worker_project_roles = [
    "roles/dataflow.worker",
    "roles/bigquery.jobUser",
    "roles/bigquery.readSessionUser",
  ]
}

resource "google_project_iam_member" "worker" {
  for_each = toset(local.worker_project_roles)

  project = var.project
  role    = each.key
  member  = local.worker
}

# roles/bigquery.dataEditor on the main dataset. Granted as a dataset access entry, by the
# legacy name WRITER that BigQuery reports for it (any other spelling shows a diff on every
# plan), and not through google_bigquery_dataset_iam_*, which may rewrite the dataset's access
# list without the authorized views.
resource "google_bigquery_dataset_access" "worker" {
  project       = var.project
  dataset_id    = google_bigquery_dataset.main.dataset_id
  role          = "WRITER"
  user_by_email = google_service_account.worker.email
}

resource "google_pubsub_topic_iam_member" "worker_publishes_events" {
  for_each = google_pubsub_topic.enforcement

  project = var.project
  topic   = each.value.name
  role    = "roles/pubsub.publisher"
  member  = local.worker
}

# Reading a subscription from Dataflow also reads its metadata (pubsub.subscriptions.get).
resource "google_pubsub_subscription_iam_member" "worker_reads_uploads" {
  for_each = toset(["roles/pubsub.subscriber", "roles/pubsub.viewer"])

  project      = var.project
  subscription = google_pubsub_subscription.upload_events.name
  role         = each.key
  member       = local.worker
}

resource "google_storage_bucket_iam_member" "worker_stages" {
  bucket = google_storage_bucket.dataflow.name
  role   = "roles/storage.objectAdmin"
  member = local.worker
}

resource "google_storage_bucket_iam_member" "worker_reads_media" {
  bucket = var.media_bucket
  role   = "roles/storage.objectViewer"
  member = local.worker
}

# Workers and the flex template launcher pull their images from the repository.
resource "google_artifact_registry_repository_iam_member" "worker_pulls_images" {
  project    = var.project
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = local.worker
}

# Who may start jobs that run as the worker service account (CI, an on-call group).
resource "google_service_account_iam_member" "job_launchers" {
  for_each = toset(var.job_launchers)

  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.key
}
