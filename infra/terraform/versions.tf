terraform {
  required_version = ">= 1.5"

  # State lives in a bucket of its own (not the Dataflow bucket this creates):
  #   terraform init -backend-config=bucket=STATE_BUCKET -backend-config=prefix=deepfake-defense
  backend "gcs" {}

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project
}

# The APIs the job and its infrastructure call. Left enabled on destroy: other workloads of the
# project may use them too.
resource "google_project_service" "enabled" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "compute.googleapis.com",
    "dataflow.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
  ])
  project            = var.project
  service            = each.key
  disable_on_destroy = false
}
