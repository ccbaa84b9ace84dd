"""checkov's Kubernetes checks on the rendered tree and on each overlay as kustomize builds it: 0 failed; the
only suppressions are the inline ones, each with its reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from crowdcount.kubernetes import KubernetesOptions, build_objects, render, write
from crowdcount.kubernetes.render import to_yaml

from .helpers import REPO, ROLE, load, write_config


def _checkov() -> str:
    """checkov lives in a virtualenv of its own (``scripts/test.sh`` makes ``.venv-tools`` and sets ``$CHECKOV``):
    its pinned dependencies conflict with crowdcount's."""
    for candidate in (os.environ.get("CHECKOV"), str(REPO / ".venv-tools" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("checkov")
    if found is None:
        pytest.skip("checkov is not installed (scripts/test.sh installs it into .venv-tools; or set $CHECKOV)")
    return found


@pytest.mark.parametrize("options", [KubernetesOptions(role_arn=ROLE), KubernetesOptions()], ids=["irsa", "keys"])
def test_checkov_kubernetes_checks_fail_nothing(tmp_path: Path, options: KubernetesOptions) -> None:
    checkov = _checkov()
    config = load(write_config(tmp_path))
    scanned = tmp_path / "scanned"
    write(render(config, options), scanned / "tree")
    built = scanned / "built"
    built.mkdir()
    for overlay in ("cpu", "gpu"):
        for scaler in ("keda", "keda-jobs", "hpa"):
            (built / f"{overlay}-{scaler}.yaml").write_text(to_yaml(build_objects(config, options, overlay, scaler)))
    run = subprocess.run(
        [checkov, "--framework", "kubernetes", "-d", str(scanned), "-o", "json", "--compact"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    assert run.stdout, run.stderr[-2000:]
    report = json.loads(run.stdout)
    (report,) = report if isinstance(report, list) else [report]
    results = report["results"]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in results["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 200
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for c in results["skipped_checks"]}
    expected = {
        (check, f"crowdcount-{c}") for check in ("CKV_K8S_14", "CKV_K8S_43") for c in ("consume", "watch", "worker")
    }
    expected.add(("CKV_K8S_35", "crowdcount-watch"))
    if options.role_arn is None:
        expected.add(("CKV_K8S_35", "crowdcount-worker"))
    assert skipped == expected
    assert all(c["check_result"].get("suppress_comment") for c in results["skipped_checks"])
