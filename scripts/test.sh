#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (real models included; ../shared/data tests skip when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check crowdcount tests benchmarks
.venv/bin/ruff format --check crowdcount tests benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
