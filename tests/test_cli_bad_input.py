"""Bad input on the command line: one line saying what is wrong and how to fix it, the README's exit code, no
traceback, nothing left behind (found by an audit of every command; each case here failed it once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from click.testing import CliRunner

from conftest import REPO
from crowdcount.cli.main import cli


def run(*args: str) -> tuple[int, str, str]:
    """``crowdcount ARGS`` through click's runner (named as the console script is): exit code, stdout, stderr;
    unexpected exceptions re-raised."""
    result = CliRunner().invoke(cli, list(args), prog_name="crowdcount")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``crowdcount ARGS`` in a process of its own (what native code writes to stderr is seen too)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROWDCOUNT_") and k != "AWS_ENDPOINT_URL"}
    environ["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "crowdcount.cli.main", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "Error: No such option '--bogus'. (see 'crowdcount --help')"),
        (["analyse", "x.mp4"], "Error: No such command 'analyse'. (see 'crowdcount --help')"),
        (
            ["--log-format", "xml", "detectors"],
            "Error: Invalid value for '--log-format': 'xml' is not one of 'text', 'json'. (see 'crowdcount --help')",
        ),
    ],
)
def test_a_bad_option_or_command_of_crowdcount_itself_is_one_line(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert (code, out, err) == (2, "", message + "\n")


def test_a_file_that_is_not_a_video_is_one_line_without_ffmpegs_own(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video\n")
    done = run_process("analyze", str(fake), "-d", "human", "-o", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: {str(fake)!r} cannot be opened as a video (not a video, or a codec OpenCV's FFmpeg lacks)\n"
    )
