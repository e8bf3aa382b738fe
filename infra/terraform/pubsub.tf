# Uploads in, enforcement events out. Topic ids are what the job publishes to:
# transforms.pubsub.topic_path(project, target, prefix) = projects/PROJECT/topics/<prefix><target>.

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "upload_events" {
  project = var.project
  name    = "upload-events"

  depends_on = [google_project_service.enabled]
}

# What the streaming job reads. Dataflow acknowledges a message once it is durably in the
# pipeline, and the job dead-letters what it cannot process itself, so no dead-letter policy.
resource "google_pubsub_subscription" "upload_events" {
  project                    = var.project
  name                       = "upload-events-streaming-job"
  topic                      = google_pubsub_topic.upload_events.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = "" # never expires, even while no job is reading
  }
}

resource "google_pubsub_topic" "dead_letters" {
  project = var.project
  name    = "dead-letters"

  depends_on = [google_project_service.enabled]
}

# A topic without a subscription drops what is published to it: keep dead letters for a week.
resource "google_pubsub_subscription" "dead_letters" {
  project                    = var.project
  name                       = "dead-letters-inspection"
  topic                      = google_pubsub_topic.dead_letters.id
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic" "enforcement" {
  for_each = toset(var.enforcement_targets)

  project = var.project
  name    = "${var.topic_prefix}${each.key}"

  depends_on = [google_project_service.enabled]
}

# Each downstream system pulls its own target's events; an event it fails to take after
# max_delivery_attempts goes to dead-letters instead of being retried for ever.
resource "google_pubsub_subscription" "enforcement" {
  for_each = google_pubsub_topic.enforcement

  project                    = var.project
  name                       = "${each.value.name}-downstream"
  topic                      = each.value.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by Pub/Sub's own service agent: it must publish to the dead-letter
# topic and acknowledge (subscribe to) the subscriptions it moves messages out of.
resource "google_pubsub_topic_iam_member" "dead_letters_publisher" {
  project = var.project
  topic   = google_pubsub_topic.dead_letters.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letters_subscriber" {
  for_each = google_pubsub_subscription.enforcement

  project      = var.project
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
