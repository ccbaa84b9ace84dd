#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (real models included; ../shared/data tests skip when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The live tests' Redis (Debian's redis-server); they skip where it cannot be installed.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1 ||
    echo "redis-server could not be installed: the Redis tests will skip"
fi
# checkov (the Kubernetes manifests' checks) in a virtualenv of its own: its pinned dependencies (boto3, networkx,
# packaging) conflict with crowdcount's. The checkov test skips where it cannot be installed.
if [ ! -x .venv/checkov/bin/checkov ]; then
  ("${PYTHON:-python3}" -m venv .venv/checkov && .venv/checkov/bin/python -m pip install -q "checkov>=3.2,<4") \
    >/dev/null 2>&1 || { rm -rf .venv/checkov; echo "checkov could not be installed: the checkov test will skip"; }
fi
.venv/bin/ruff check crowdcount tests benchmarks
.venv/bin/ruff format --check crowdcount tests benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
