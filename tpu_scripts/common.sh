# Shared by every TPU script: the variables a user sets, and `run`, which prints instead of
# executing under --dry-run. Source it; do not run it.
# Every variable can be overridden from the environment: TPU_NAME=my-pod ./create.sh

: "${PROJECT:=$(gcloud config get-value project 2>/dev/null || echo my-gcp-project)}"
: "${ZONE:=us-central2-b}"                     # v4: us-central2-b; v5e: us-west4-a / europe-west4-b
: "${TPU_NAME:=transcendence}"
: "${QUEUED_RESOURCE_ID:=${TPU_NAME}-qr}"
: "${ACCELERATOR_TYPE:=v4-32}"                 # or v5litepod-16, v5p-8, ...
: "${RUNTIME_VERSION:=tpu-ubuntu2204-base}"   # v5e: v2-alpha-tpuv5-lite
: "${BUCKET:=gs://${PROJECT}-transcendence}"
: "${SPOT:=0}"                                 # 1: spot capacity (cheaper, preemptible)
: "${REPO_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

DRY_RUN=0

# usage_and_flags "$@": handles -h/--help (prints the calling script's header) and --dry-run.
parse_common_flags() {
  local arg
  REST=()
  for arg in "$@"; do
    case "$arg" in
      -h|--help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
      --dry-run) DRY_RUN=1 ;;
      *) REST+=("$arg") ;;
    esac
  done
}

# run CMD...: execute, or print it (shell-quoted) under --dry-run.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

# on_workers WORKER COMMAND: run a shell command on TPU VM workers ("all" or an index).
on_workers() {
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --project="$PROJECT" --zone="$ZONE" \
    --worker="$1" --command="$2"
}
