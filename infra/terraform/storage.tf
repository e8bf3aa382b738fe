# Dataflow's staging (staging/), temporary (temp/) and template (templates/) files, and the
# worker and launcher images.

resource "google_storage_bucket" "dataflow" {
  project                     = var.project
  name                        = var.bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Temporary files are rewritten all the time; soft-deleted copies would only cost money.
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  # Only temp/ expires: a streaming job's workers fetch their staged packages from staging/
  # whenever they start, months into the job.
  lifecycle_rule {
    condition {
      age            = var.temp_retention_days
      matches_prefix = ["temp/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_artifact_registry_repository" "images" {
  project       = var.project
  location      = var.region
  repository_id = var.artifact_repository
  format        = "DOCKER"
  description   = "Dataflow worker images (CPU, GPU) and the flex template launcher of the deepfake detection jobs."

  depends_on = [google_project_service.enabled]
}
