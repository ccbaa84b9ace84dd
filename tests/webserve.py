"""A real ``crowdcount`` web server for browser tests: started as a subprocess on a free port, waited for over
HTTP, stopped with Ctrl-C (SIGINT) as a person stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from processes import stop_process

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    """The JSON document at ``url``."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def crowdcount_process(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``crowdcount ARGS`` running from the repository, its stderr in ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "crowdcount.cli.main", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 90.0) -> None:
    """Wait until ``url`` answers; AssertionError with the server's log when it exits or does not answer."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            return
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}: {log.read_text()}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer in {seconds} s: {log.read_text()}") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, then kill if it does not end in 20 s."""
    stop_process(process, 20, signal.SIGINT)


@contextmanager
def serving(*args: str, port: int, log: Path, ready: str = "api/info") -> Iterator[str]:
    """``crowdcount ARGS`` (a web server on ``port``) while the block runs; yields its base URL once ``ready``
    answers."""
    process = crowdcount_process(*args, log=log)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_http(base + ready, process, log)
        yield base
    finally:
        stop(process)
