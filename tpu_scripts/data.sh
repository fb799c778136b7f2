#!/usr/bin/env bash
# Build a Lichess dataset on worker 0 from a monthly dump and upload it to GCS.
#
# Usage: tpu_scripts/data.sh [--dry-run] MONTH MAX_RATING
#   e.g. tpu_scripts/data.sh 2023-01 1000   -> $BUCKET/data/lichess-2023-01-1000
# Downloads lichess_db_standard_rated_MONTH.pgn.zst on worker 0 (TPU VMs reach the internet),
# runs `transcendence data build` over all its cores, then copies the shards to GCS.
# Variables: PROJECT ZONE TPU_NAME BUCKET (see tpu_scripts/common.sh).

set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_common_flags "$@"
set -- "${REST[@]}"
[ $# -eq 2 ] || { echo "usage: $0 [--dry-run] MONTH MAX_RATING" >&2; exit 2; }
month=$1 cap=$2
dump="lichess_db_standard_rated_$month.pgn.zst"
name="lichess-$month-$cap"

on_workers 0 "cd /tmp && (test -f $dump || wget -q https://database.lichess.org/standard/$dump) && \
transcendence data build /tmp/$dump --max-rating $cap --out /tmp/$name && \
gsutil -m cp -r /tmp/$name $BUCKET/data/$name"
