"""The house rules of imports (.importlinter): cli -> aws -> analyzer -> detectors, detectors know nothing of the
others, the analyzer no cloud, faces no cloud and no CLI, nothing imports the CLI. And the contract really bites."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(binary).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return subprocess.run(
        [binary, str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contract_is_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_a_detector_importing_the_analyzer_breaks_the_contract(tmp_path: Path) -> None:
    skip = shutil.ignore_patterns("models", "__pycache__")
    shutil.copytree(REPO / "crowdcount", tmp_path / "crowdcount", ignore=skip)
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    base = tmp_path / "crowdcount" / "detectors" / "base.py"
    base.write_text(base.read_text() + "\nimport crowdcount.analyzer.video  # noqa\n")
    live = tmp_path / "crowdcount" / "live" / "metrics.py"
    live.write_text(live.read_text() + "\nimport crowdcount.cli.common  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "crowdcount.detectors.base -> crowdcount.analyzer.video" in result.stdout
    assert "crowdcount.live.metrics -> crowdcount.cli.common" in result.stdout
    assert "Contracts: 2 kept, 3 broken." in result.stdout
