variable "project" {
  description = "Google Cloud project that runs the jobs and holds their data."
  type        = string
}

variable "region" {
  description = "Region of the Dataflow jobs, the BigQuery datasets, the bucket and the image repository."
  type        = string
}

variable "dataset" {
  description = "BigQuery dataset of the warehouse tables (the job's --warehouse bq://PROJECT.DATASET)."
  type        = string
  default     = "deepfake_defense"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1000}$", var.dataset))
    error_message = "A BigQuery dataset id holds letters, digits and underscores only."
  }
}

variable "bucket" {
  description = "Name of the bucket for Dataflow staging (staging/), temporary files (temp/) and templates (templates/)."
  type        = string
}

variable "media_bucket" {
  description = "Existing bucket of uploaded media that the manifests' gs:// media_uri values point into (read only)."
  type        = string
}

variable "enforcement_targets" {
  description = <<-EOT
    Downstream systems that receive enforcement events, one Pub/Sub topic each: every target of
    the policy (policies/*.yaml `targets`) and account_enforcement, where account suspensions go.
  EOT
  type        = list(string)
  default = [
    "content_store",
    "search_index",
    "notifications",
    "recommendations",
    "strike_ledger",
    "review_queue",
    "account_enforcement",
  ]

  validation {
    condition     = alltrue([for target in var.enforcement_targets : can(regex("^[a-z][a-z0-9_-]*$", target))])
    error_message = "A target name must be usable in a Pub/Sub topic id: lower-case letters, digits, - and _."
  }
}

variable "topic_prefix" {
  description = "Prefix of each target's topic id, as the job's --pubsub_topic_prefix (default: the target's name)."
  type        = string
  default     = ""
}

variable "max_delivery_attempts" {
  description = "Deliveries of an enforcement event before its subscription moves it to the dead-letters topic."
  type        = number
  default     = 10
}

variable "compliance_analysts" {
  description = "Google group (email) allowed to read the compliance views, which name no account."
  type        = string
}

variable "job_launchers" {
  description = "Members (e.g. serviceAccount:ci@PROJECT.iam.gserviceaccount.com) allowed to run jobs as the worker service account."
  type        = list(string)
  default     = []
}

variable "worker_account_id" {
  description = "Account id of the service account the Dataflow workers (and the flex template launcher) run as."
  type        = string
  default     = "deepfake-dataflow-worker"
}

variable "artifact_repository" {
  description = "Artifact Registry repository of the worker and flex template launcher images."
  type        = string
  default     = "deepfake-defense"
}

variable "temp_retention_days" {
  description = "Days after which files under temp/ in the bucket are deleted."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Refuse to destroy the warehouse tables (true in production; false for a throwaway project)."
  type        = bool
  default     = true
}
