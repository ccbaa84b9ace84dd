"""The Dockerfile, .dockerignore and the local run script (no base image can be pulled here, so the image
itself is not built: its instructions are checked instead)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from crowdcount.aws.deploy.deployer import cpu_base_image
from crowdcount.errors import ConfigError

from .helpers import REPO


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines: list[tuple[str, str]] = []
    current = ""
    for raw in path.read_text().splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip("\\").strip() + " " if raw.rstrip().endswith("\\") else raw.strip()
        if not raw.rstrip().endswith("\\"):
            keyword, _, rest = current.partition(" ")
            lines.append((keyword.upper(), rest.strip()))
            current = ""
    return lines


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(REPO / "Dockerfile")


def test_gpu_base_image_with_a_cpu_switch(dockerfile: list[tuple[str, str]]) -> None:
    assert dockerfile[0] == ("ARG", "BASE_IMAGE=tensorflow/tensorflow:2.18.0-gpu")
    assert dockerfile[1] == ("FROM", "${BASE_IMAGE}")
    assert cpu_base_image(REPO / "Dockerfile") == "tensorflow/tensorflow:2.18.0"


def test_cpu_switch_needs_the_build_arg(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\n")
    with pytest.raises(ConfigError, match=re.escape("has no 'ARG BASE_IMAGE=...-gpu' line")):
        cpu_base_image(tmp_path / "Dockerfile")


def test_opencv_libraries_package_and_weights_check(dockerfile: list[tuple[str, str]]) -> None:
    runs = [args for kind, args in dockerfile if kind == "RUN"]
    assert any("libgl1" in r and "libglib2.0-0" in r for r in runs)
    assert any(r.startswith("python -m pip install .") for r in runs)
    # The build fails if the default detectors' weights (inside the wheels) are missing or do not load.
    assert any("build_detectors(DEFAULTS['human_detection']['detectors'])" in r and ".load()" in r for r in runs)
    copies = [args for kind, args in dockerfile if kind == "COPY"]
    assert copies == ["pyproject.toml setup.py README.md ./", "crowdcount ./crowdcount", "variables.json ./"]


def test_runs_as_a_non_root_user_with_the_worker_entrypoint(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for kind, args in dockerfile if kind == "USER"]
    assert users == ["10001:10001"]  # numeric (hadolint DL3066): the crowdcount user made by useradd --uid 10001
    assert any(kind == "RUN" and "useradd" in args and "crowdcount" in args for kind, args in dockerfile)
    kinds = [kind for kind, _ in dockerfile]
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    assert dockerfile[-1] == ("ENTRYPOINT", '["crowdcount", "worker"]')
    assert json.loads(dockerfile[-1][1]) == ["crowdcount", "worker"]


def test_the_weights_check_is_valid_python() -> None:
    run = next(a for k, a in instructions(REPO / "Dockerfile") if k == "RUN" and "build_detectors" in a)
    code = re.search(r'python -c "(.*)"$', run)
    assert code is not None
    compile(code.group(1), "Dockerfile", "exec")


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", "tests", "**/__pycache__", "*.egg-info", "crowdcount_results", "samples"):
        assert excluded in patterns
    for needed in ("crowdcount", "pyproject.toml", "setup.py", "README.md", "variables.json"):
        assert not any(p == needed or p.startswith(f"{needed}/") for p in patterns)


SCRIPT = REPO / "scripts" / "run-worker-local.sh"


def run_script(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run the script with a fake ``docker`` that prints its arguments, one per line."""
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\nif [ "$1" = info ]; then exit 1; fi\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    full_env = {"PATH": os.environ["PATH"], "HOME": str(home), "DOCKER": str(fake), **(env or {})}
    out = subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_local_run_mounts_credentials_read_only(tmp_path: Path) -> None:
    (tmp_path / "variables.json").write_text("{}")
    argv = run_script(
        tmp_path,
        "--image",
        "crowdcount-worker:dev",
        "--",
        "--max-jobs",
        "1",
        env={"AWS_PROFILE": "work", "CROWDCOUNT_DYNAMODB__TABLE_ID": "t", "AWS_SECRET_ACCESS_KEY": "s3cr3t"},
    )
    assert argv[0] == "run"
    assert f"{tmp_path}/home/.aws:/home/crowdcount/.aws:ro" in argv
    assert f"{tmp_path}/variables.json:/app/variables.json:ro" in argv
    assert "AWS_PROFILE" in argv and "CROWDCOUNT_DYNAMODB__TABLE_ID" in argv and "AWS_SECRET_ACCESS_KEY" in argv
    assert "s3cr3t" not in " ".join(argv)  # passed by name, never on the command line
    assert "--gpus" not in argv  # the fake engine has no NVIDIA runtime
    assert argv[-3:] == ["crowdcount-worker:dev", "--max-jobs", "1"]


def test_local_run_against_the_sandbox(tmp_path: Path) -> None:
    argv = run_script(tmp_path, "--cpu", "--sandbox", "http://127.0.0.1:5000")
    assert "--network" in argv and "host" in argv
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:5000" in argv
    assert argv[-1] == "crowdcount-worker:latest"


def test_local_run_rejects_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        run_script(tmp_path, "--bogus")
    assert info.value.returncode == 2
    assert "unknown option --bogus" in info.value.stderr
