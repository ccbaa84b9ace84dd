"""The house rules of imports (.importlinter): cli -> aws -> analyzer -> detectors, detectors know nothing of the
others, the analyzer no cloud, faces no cloud and no CLI, nothing imports the CLI. And the contract really bites.
The package type-checks with mypy, strict as pyproject.toml's [tool.mypy] says."""

from __future__ import annotations

import os
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


def run_mypy(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[dev]')")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_package_type_checks() -> None:
    """mypy, strict as pyproject.toml's [tool.mypy] sets it, on the whole package."""
    result = run_mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found")


def test_the_type_check_is_strict(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def halve(x):\n    return x / 2\n\n\ndef name(n: int) -> str:\n    return n\n")
    result = run_mypy(str(sample))
    assert result.returncode == 1
    assert "sample.py:1: error: Function is missing a type annotation  [no-untyped-def]" in result.stdout
    assert 'sample.py:6: error: Incompatible return value type (got "int", expected "str")' in result.stdout
