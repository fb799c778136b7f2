#!/usr/bin/env bash
# Run `transcendence train` on all workers at once, with the workdir on GCS.
#
# Usage: tpu_scripts/train.sh [--dry-run] CONFIG RUN_NAME [--config.key=value ...]
#   e.g. DATA=lichess-2023-01-1000 tpu_scripts/train.sh configs/paper_50m.py chessformer-1000
# DATA (a dataset under $BUCKET/data, from data.sh) is first copied to every worker's local disk.
# Every worker runs the same command; jax.distributed.initialize() finds the pod's hosts itself,
# each host feeds its own shard of the data, and only process 0 writes logs.
# Variables: PROJECT ZONE TPU_NAME BUCKET (see tpu_scripts/common.sh).

set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_common_flags "$@"
set -- "${REST[@]}"
[ $# -ge 2 ] || { echo "usage: $0 [--dry-run] CONFIG RUN_NAME [--config.key=value ...]" >&2; exit 2; }
config=$1 run_name=$2; shift 2
overrides=""; [ $# -gt 0 ] && overrides=$(printf " %q" "$@")

: "${DATA:?set DATA to a dataset name under \$BUCKET/data (see tpu_scripts/data.sh)}"
on_workers all "mkdir -p /tmp/data && gsutil -m -q cp -r $BUCKET/data/$DATA /tmp/data/ && cd ~ && nohup transcendence train --config $config --workdir $BUCKET/runs/$run_name --config.data.path=/tmp/data/$DATA$overrides \
> ~/train-$run_name.log 2>&1 &"
echo "training started; follow it with:"
echo "  gcloud compute tpus tpu-vm ssh $TPU_NAME --zone=$ZONE --worker=0 --command='tail -f ~/train-$run_name.log'"
