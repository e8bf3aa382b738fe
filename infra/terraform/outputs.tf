output "dataset" {
  description = "The job's --warehouse is bq://PROJECT.DATASET with this dataset."
  value       = google_bigquery_dataset.main.dataset_id
}

output "compliance_dataset" {
  description = "Dataset of the authorized views the compliance analysts read."
  value       = google_bigquery_dataset.compliance.dataset_id
}

output "bucket" {
  description = "Bucket for --staging_location gs://BUCKET/staging, --temp_location gs://BUCKET/temp and templates/."
  value       = google_storage_bucket.dataflow.name
}

output "service_account_email" {
  description = "The jobs' --service_account_email."
  value       = google_service_account.worker.email
}

output "image_repository" {
  description = "Where the worker and launcher images are pushed (REGION-docker.pkg.dev/PROJECT/REPOSITORY)."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}

output "upload_events_topic" {
  value = google_pubsub_topic.upload_events.name
}

output "upload_events_subscription" {
  description = "What the streaming job reads."
  value       = google_pubsub_subscription.upload_events.id
}

output "enforcement_topics" {
  description = "Target -> topic id the job publishes that target's events to (--pubsub_topic_prefix as topic_prefix)."
  value       = { for target, topic in google_pubsub_topic.enforcement : target => topic.name }
}

output "enforcement_subscriptions" {
  description = "Target -> subscription its downstream system pulls."
  value       = { for target, subscription in google_pubsub_subscription.enforcement : target => subscription.name }
}

output "dead_letter_topic" {
  value = google_pubsub_topic.dead_letters.name
}
