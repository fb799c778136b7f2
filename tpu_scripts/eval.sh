#!/usr/bin/env bash
# Evaluate a trained run: the temperature grid against Stockfish, ratings table and figure.
#
# Usage: tpu_scripts/eval.sh [--dry-run] RUN_NAME [extra `transcendence eval` flags]
# Runs on worker 0 (evaluation is Stockfish-bound), then copies the results next to the run.
# Variables: PROJECT ZONE TPU_NAME BUCKET (see tpu_scripts/common.sh).

set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_common_flags "$@"
set -- "${REST[@]}"
[ $# -ge 1 ] || { echo "usage: $0 [--dry-run] RUN_NAME [eval flags]" >&2; exit 2; }
run_name=$1; shift
extra=""; [ $# -gt 0 ] && extra=$(printf " %q" "$@")

on_workers 0 "transcendence eval --workdir $BUCKET/runs/$run_name --out ~/eval-$run_name$extra && \
gsutil -m cp -r ~/eval-$run_name $BUCKET/runs/$run_name/eval"
