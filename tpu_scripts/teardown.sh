#!/usr/bin/env bash
# Delete the TPU and its queued resource (stops the billing). The GCS bucket is kept.
#
# Usage: tpu_scripts/teardown.sh [--dry-run]
# Variables: PROJECT ZONE TPU_NAME QUEUED_RESOURCE_ID (see tpu_scripts/common.sh).

set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_common_flags "$@"

run gcloud compute tpus queued-resources delete "$QUEUED_RESOURCE_ID" \
  --project="$PROJECT" --zone="$ZONE" --force --quiet
