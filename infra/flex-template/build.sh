#!/usr/bin/env bash
# Build the batch job's Flex Template, or run it. From the repository root, after
# `terraform apply` (infra/terraform) and with the images pushed (infra/cloudbuild.yaml):
#
#   PROJECT=my-project REGION=europe-west1 BUCKET=my-bucket infra/flex-template/build.sh build
#   PROJECT=my-project REGION=europe-west1 BUCKET=my-bucket \
#     infra/flex-template/build.sh run input=gs://uploads/2026-11-30/manifest.jsonl [name=value ...]
#
# Optional: REPOSITORY (Artifact Registry, default deepfake-defense), TAG (image tag, default
# latest), DATASET (default deepfake_defense), WORKER (worker-cpu or worker-gpu), and for run
# SERVICE_ACCOUNT (default the Terraform's deepfake-dataflow-worker). Extra name=value words are
# template parameters (infra/flex-template/metadata.json lists them); warehouse and
# sdk_container_image are filled in.
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}"
REPOSITORY="${REPOSITORY:-deepfake-defense}"
TAG="${TAG:-latest}"
DATASET="${DATASET:-deepfake_defense}"
WORKER="${WORKER:-worker-cpu}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-deepfake-dataflow-worker@${PROJECT}.iam.gserviceaccount.com}"
IMAGES="${REGION}-docker.pkg.dev/${PROJECT}/${REPOSITORY}"
TEMPLATE="gs://${BUCKET}/templates/batch.json"

case "${1:-}" in
  build)
    # The template spec: which launcher image runs, and the parameters it takes.
    gcloud dataflow flex-template build "${TEMPLATE}" \
      --project "${PROJECT}" \
      --image "${IMAGES}/batch-launcher:${TAG}" \
      --sdk-language PYTHON \
      --metadata-file infra/flex-template/metadata.json
    ;;
  run)
    shift
    # Parameters are joined with "~" (gcloud's ^~^ form): SQL and accelerator values hold commas.
    parameters="warehouse=bq://${PROJECT}.${DATASET}~sdk_container_image=${IMAGES}/${WORKER}:${TAG}"
    for parameter in "$@"; do
      parameters+="~${parameter}"
    done
    gcloud dataflow flex-template run "deepfake-batch-$(date -u +%Y%m%d-%H%M%S)" \
      --project "${PROJECT}" \
      --region "${REGION}" \
      --template-file-gcs-location "${TEMPLATE}" \
      --service-account-email "${SERVICE_ACCOUNT}" \
      --staging-location "gs://${BUCKET}/staging" \
      --temp-location "gs://${BUCKET}/temp" \
      --parameters "^~^${parameters}"
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
