"""Shared fixtures: tiny synthetic videos, a fake square detector, and the path of ../shared/data."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from processes import stop_process

from crowdcount.cli.main import cli
from crowdcount.detectors import DETECTORS, Detections, Detector

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CROWDCOUNT_DATA_DIR", REPO.parent / "shared" / "data"))
SAMPLE_CLIP = REPO / "samples" / "vtest-15s.mp4"


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """The CLI configures logging for the process (the root logger; the worker raises crowdcount.aws to INFO):
    put it back for the other tests. Use it in a module that runs commands: ``pytestmark =
    pytest.mark.usefixtures("keep_logging")``."""
    root, aws = logging.getLogger(), logging.getLogger("crowdcount.aws")
    handlers, level, aws_level = root.handlers[:], root.level, aws.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    aws.setLevel(aws_level)


@contextlib.contextmanager
def running_sandbox(cwd: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """``crowdcount sandbox --port 0`` as a real process in ``cwd`` (its stderr into ``log``): yields the endpoint
    it prints, and stops it afterwards."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crowdcount.cli.main", "sandbox", "--port", "0"],
            stdout=subprocess.PIPE, stderr=err, env=env, cwd=cwd, text=True,
        )  # fmt: skip
    try:
        endpoint = None
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while endpoint is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.strip().startswith("export AWS_ENDPOINT_URL="):
                endpoint = line.strip().split("=", 1)[1]
        assert endpoint, f"the sandbox did not start: {log.read_text()}"
        yield endpoint
    finally:
        stop_process(proc, 15)


def run_cli(*args: str) -> tuple[int, str, str]:
    """``crowdcount ARGS`` through click's runner: exit code, stdout, stderr; unexpected exceptions re-raised."""
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


SQUARE = 24  # side of the white squares drawn by write_video


def squares_in_frame(i: int) -> int:
    """How many squares ``write_video`` draws in 0-based frame ``i`` (0, 1, 2, 3, 0, 1, ...)."""
    return i % 4


def write_video(
    path: Path,
    frames: int,
    size: tuple[int, int] = (160, 120),
    fps: float = 10.0,
    fourcc: str = "mp4v",
) -> Path:
    """Write a synthetic video: black frames with ``squares_in_frame(i)`` white squares in frame ``i``."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"cannot write {fourcc} video"
    for i in range(frames):
        frame = np.zeros((height, width, 3), np.uint8)
        for k in range(squares_in_frame(i)):
            x = 8 + k * (SQUARE + 12)
            frame[40 : 40 + SQUARE, x : x + SQUARE] = (255, 255, 255)
        frame[0:4, 0:4] = (0, 0, 255)  # a red (BGR) corner: lets tests check the RGB conversion
        writer.write(frame)
    writer.release()
    return path


class SquareDetector(Detector):
    """A fake detector for unit tests: finds the white squares of ``write_video`` by thresholding.

    It records the size of every batch it is called with and checks frames arrive as RGB.
    """

    category = "Human"
    name = "squares"

    def __init__(self, min_detection_score: float = 0.5, max_batch_size: int = 4) -> None:
        super().__init__(min_detection_score, max_batch_size)
        self.batches: list[int] = []
        self.loads = 0
        self.check_rgb = True  # the red corner exists only in write_video's frames

    def _load(self) -> None:
        self.loads += 1

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        self.batches.append(len(frames))
        out = []
        for frame in frames:
            assert frame.dtype == np.uint8 and frame.ndim == 3
            corner = frame[1, 1]
            assert not self.check_rgb or (corner[0] > 150 and corner[2] < 100), f"frame is not RGB: {corner}"
            mask = (frame.min(axis=2) > 128).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:n] if area > (SQUARE * SQUARE) // 2]
            out.append(Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.9), np.ones(len(boxes))))
        return out

    def model_info(self) -> dict[str, Any]:
        return {"name": "squares", "source": "tests"}


class FaceSquareDetector(SquareDetector):
    """The same fake, reporting the ``Face`` category."""

    category = "Face"
    name = "face-squares"


@pytest.fixture
def video_factory(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic video into the test's temporary folder: ``video_factory("a.mp4", frames=20)``."""

    def make(name: str = "clip.mp4", frames: int = 20, **kwargs: Any) -> Path:
        return write_video(tmp_path / name, frames, **kwargs)

    return make


@pytest.fixture
def fake_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fake detectors as ``squares`` and ``face-squares`` for CLI tests."""
    monkeypatch.setitem(DETECTORS, "squares", SquareDetector)
    monkeypatch.setitem(DETECTORS, "face-squares", FaceSquareDetector)


@pytest.fixture
def data_dir() -> Path:
    """``../shared/data``; the test is skipped when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"test data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's environment overrides."""
    for name in list(os.environ):
        if name.startswith("CROWDCOUNT_") and name != "CROWDCOUNT_DATA_DIR":
            monkeypatch.delenv(name)


Where = Callable[[int], "tuple[int, int] | None"]


def write_moving(path: Path, frames: int, paths: Sequence[Where], size: tuple[int, int] = (160, 120)) -> Path:
    """Black frames (10 fps) with one white square per path, at the path's top-left corner in frame ``i``."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.zeros((height, width, 3), np.uint8)
        for where in paths:
            corner = where(i)
            if corner is not None:
                x, y = corner
                frame[y : y + SQUARE, x : x + SQUARE] = (255, 255, 255)
        frame[0:4, 0:4] = (0, 0, 255)  # the red corner SquareDetector checks
        writer.write(frame)
    writer.release()
    return path
