#!/usr/bin/env bash
# Run the worker image locally, as ECS would, with your AWS credentials mounted read-only.
#
#   scripts/run-worker-local.sh [--image IMAGE] [--cpu] [--sandbox URL] [-- WORKER ARGS...]
#
#   --image IMAGE   image to run (default: crowdcount-worker:latest, what `crowdcount deploy` builds locally)
#   --cpu           no GPU (default: --gpus all when the NVIDIA runtime is available)
#   --sandbox URL   talk to the local sandbox (moto server) at URL instead of AWS (uses the host network)
#   WORKER ARGS     passed to `crowdcount worker`, e.g. -- --max-jobs 1 --idle-timeout 60
#
# ~/.aws is mounted read-only at the container user's ~/.aws; AWS_PROFILE, AWS_REGION, AWS_DEFAULT_REGION,
# AWS access keys (if set) and CROWDCOUNT_* variables are passed through; ./variables.json (if present)
# is mounted read-only over the image's copy.
set -euo pipefail

IMAGE=${CROWDCOUNT_IMAGE:-crowdcount-worker:latest}
GPU=auto
SANDBOX=""
DOCKER=${DOCKER:-docker}

while [ $# -gt 0 ]; do
  case "$1" in
    --image) IMAGE=$2; shift 2 ;;
    --cpu) GPU=no; shift ;;
    --sandbox) SANDBOX=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run-worker-local.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

args=(run --rm --init --name "crowdcount-worker-$$")
# The image runs as the non-root user "crowdcount" (home /home/crowdcount).
if [ -d "${HOME}/.aws" ]; then
  args+=(-v "${HOME}/.aws:/home/crowdcount/.aws:ro")
fi
if [ -f variables.json ]; then
  args+=(-v "$(pwd)/variables.json:/app/variables.json:ro")
fi
for name in AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN; do
  if [ -n "${!name:-}" ]; then
    args+=(-e "$name")
  fi
done
while IFS='=' read -r name _; do
  args+=(-e "$name")
done < <(env | grep -E '^CROWDCOUNT_[A-Z0-9_]+=' || true)
if [ -n "$SANDBOX" ]; then
  args+=(--network host -e "AWS_ENDPOINT_URL=$SANDBOX")
fi
if [ "$GPU" = auto ] && "$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
  args+=(--gpus all)
fi

exec "$DOCKER" "${args[@]}" "$IMAGE" "$@"
