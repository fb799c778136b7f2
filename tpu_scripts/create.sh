#!/usr/bin/env bash
# Create a TPU VM or pod slice through a queued resource and wait until it is ACTIVE.
#
# Usage: tpu_scripts/create.sh [--dry-run]
# Variables (environment): PROJECT ZONE TPU_NAME QUEUED_RESOURCE_ID ACCELERATOR_TYPE
#   RUNTIME_VERSION SPOT (see tpu_scripts/common.sh for defaults).
# --dry-run prints the gcloud commands instead of running them.

set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_common_flags "$@"

capacity=()
[ "$SPOT" = 1 ] && capacity=(--spot)
run gcloud compute tpus queued-resources create "$QUEUED_RESOURCE_ID" \
  --project="$PROJECT" --zone="$ZONE" --node-id="$TPU_NAME" \
  --accelerator-type="$ACCELERATOR_TYPE" --runtime-version="$RUNTIME_VERSION" "${capacity[@]}"

if [ "$DRY_RUN" = 1 ]; then
  run gcloud compute tpus queued-resources describe "$QUEUED_RESOURCE_ID" --project="$PROJECT" --zone="$ZONE" \
    --format='value(state.state)'
  exit 0
fi
echo "waiting for $QUEUED_RESOURCE_ID to become ACTIVE (queued resources can take a while)..."
while true; do
  state=$(gcloud compute tpus queued-resources describe "$QUEUED_RESOURCE_ID" \
    --project="$PROJECT" --zone="$ZONE" --format='value(state.state)')
  echo "  state: $state"
  case "$state" in
    ACTIVE) break ;;
    FAILED|SUSPENDED) echo "error: queued resource $QUEUED_RESOURCE_ID is $state" >&2; exit 1 ;;
  esac
  sleep 30
done
