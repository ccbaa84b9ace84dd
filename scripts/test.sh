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
.venv/bin/ruff check crowdcount tests benchmarks
.venv/bin/ruff format --check crowdcount tests benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
