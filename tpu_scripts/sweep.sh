#!/usr/bin/env bash
# Run a sweep (`transcendence sweep`) on the hosts of a TPU slice: each host runs its share.
#
# Usage: tpu_scripts/sweep.sh [--dry-run] CONFIG SIZE NAME [extra `transcendence sweep` flags]
# Host w of HOSTS runs the points whose index % HOSTS == w (`--shard w/HOSTS`), one at a time on
# its own chips, into ~/sweeps/NAME, and copies its points to $BUCKET/sweeps/NAME; when every host
# has finished, worker 0 gathers all the points there and writes the report (results.json,
# figure.png, summary.md) next to them. Each host first fetches what the bucket holds, so a rerun
# (a preempted or recreated slice) resumes: a finished point is never redone.
# Variables: PROJECT ZONE TPU_NAME BUCKET (see tpu_scripts/common.sh); HOSTS, the slice's hosts
# (default 4: a v4-32).

set -euo pipefail
source "$(dirname "$0")/common.sh"
parse_common_flags "$@"
set -- "${REST[@]}"
[ $# -ge 3 ] || { echo "usage: $0 [--dry-run] CONFIG SIZE NAME [sweep flags]" >&2; exit 2; }
config=$1 size=$2 name=$3; shift 3
: "${HOSTS:=4}"
extra=""; [ $# -gt 0 ] && extra=$(printf " %q" "$@")
sweep="transcendence sweep $config --size $size --out ~/sweeps/$name$extra"
sync_up="gsutil -m -q rsync -r ~/sweeps/$name $BUCKET/sweeps/$name"
sync_down="mkdir -p ~/sweeps/$name && { gsutil -m -q rsync -r $BUCKET/sweeps/$name ~/sweeps/$name || true; }"  # none yet: fine

pids=() status=0
for ((w = 0; w < HOSTS; w++)); do
  command="$sync_down && $sweep --shard $w/$HOSTS --workers 1; code=\$?; $sync_up; exit \$code"
  if [ "$DRY_RUN" = 1 ]; then
    on_workers "$w" "$command"
  else
    on_workers "$w" "$command" & pids+=($!)
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done  # a failed point: reported below, named
on_workers 0 "$sync_down && $sweep --report && $sync_up"
exit $status
