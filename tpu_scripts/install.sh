#!/usr/bin/env bash
# Install this repository (as a wheel, with jax[tpu]) and Stockfish on every worker of the TPU.
#
# Usage: tpu_scripts/install.sh [--dry-run]
# Builds the wheel locally (python -m build), copies it to all workers, installs it there.
# Variables: PROJECT ZONE TPU_NAME REPO_DIR (see tpu_scripts/common.sh).

set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_common_flags "$@"

run python3 -m build --wheel --outdir "$REPO_DIR/dist" "$REPO_DIR"
wheel="transcendence_jax-0.1.0-py3-none-any.whl"
run gcloud compute tpus tpu-vm scp "$REPO_DIR/dist/$wheel" "$TPU_NAME:/tmp/$wheel" \
  --project="$PROJECT" --zone="$ZONE" --worker=all
run gcloud compute tpus tpu-vm scp --recurse "$REPO_DIR/configs" "$TPU_NAME:~/" \
  --project="$PROJECT" --zone="$ZONE" --worker=all
on_workers all "sudo apt-get update -q && sudo apt-get install -y -q stockfish && \
python3 -m pip install -q '/tmp/$wheel[tpu]' && python3 -c 'import jax; print(jax.device_count())'"
