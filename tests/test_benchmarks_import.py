"""The benchmarks the docs tell users to run still import: a rename in the package once broke one unnoticed."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

IMPORT_ALL = """
import importlib.util, pathlib, sys
failed = []
for path in sorted(pathlib.Path("benchmarks").glob("*.py")):
    spec = importlib.util.spec_from_file_location("bench_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        failed.append(f"{path}: {type(exc).__name__}: {exc}")
    if not callable(getattr(module, "main", None)):
        failed.append(f"{path}: no main()")
print("\\n".join(failed))
"""


def test_every_benchmark_imports_and_has_a_main() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert (done.returncode, done.stdout) == (0, "\n"), done.stderr[-2000:]
