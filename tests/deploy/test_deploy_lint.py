"""The deploy files pass checkov (0 failed checks, skips only inline with a reason) and hadolint.

checkov and hadolint pin versions of boto3 and others that clash with the project's: scripts/test.sh installs them
into a venv of their own (``.venv-tools``), found here through ``$DEPLOY_LINT_TOOLS``, that folder, or ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import REPO

TEMPLATE = REPO / "crowdcount" / "aws" / "deploy" / "templates" / "cloudformation.yaml"
DOCKERFILE = REPO / "Dockerfile"
#: Not a CROWDCOUNT_* name: those are read as config overrides.
TOOLS = os.environ.get("DEPLOY_LINT_TOOLS")


def tool(name: str) -> str:
    for folder in (TOOLS, str(REPO / ".venv-tools" / "bin")):
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (bash scripts/test.sh installs it into .venv-tools)")
    return found


def checkov(path: Path, framework: str) -> dict:
    proc = subprocess.run(
        [tool("checkov"), "-f", str(path), "--framework", framework, "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"},
    )
    start = proc.stdout.find("{")
    assert start >= 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout[start:])
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize(("path", "framework"), [(TEMPLATE, "cloudformation"), (DOCKERFILE, "dockerfile")])
def test_checkov_finds_no_failed_check(path: Path, framework: str) -> None:
    report = checkov(path, framework)
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == [] and report["summary"]["failed"] == 0
    assert report["summary"]["passed"] > 20
    for skipped in report["results"]["skipped_checks"]:  # each skip says why, inline
        reason = (skipped.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) > 40, f"{skipped['check_id']} is skipped without a reason"


def test_hadolint_is_clean() -> None:
    proc = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_shipped_template_copies_are_the_same() -> None:
    assert TEMPLATE.read_text() == (REPO / "taskdefs" / "cloudformation.yaml").read_text()


def test_the_template_hardening_is_there() -> None:
    text = TEMPLATE.read_text()
    for needle in (
        "aws:SecureTransport",  # TLS-only bucket policy
        "VersioningConfiguration",
        "ExpirationInDays: !Ref FootageRetentionDays",  # footage lifecycle
        "PointInTimeRecoveryEnabled: true",
        "SqsManagedSseEnabled",
    ):
        assert needle in text, needle
    assert "HEALTHCHECK" in DOCKERFILE.read_text()
