"""The edge client's frame source: a camera's frames at a steady interval of wall time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from crowdcount.live import capture as capture_module


class _Camera:
    """A camera delivering a frame every 40 ms of a fake clock (its frame's first pixel is its number)."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.n = 0
        self.released = False

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 25.0

    def read(self) -> tuple[bool, np.ndarray]:
        self.clock[0] += 0.04
        self.n += 1
        return True, np.full((2, 2, 3), self.n % 256, np.uint8)

    def release(self) -> None:
        self.released = True


def test_a_slow_consumer_gets_no_burst_of_camera_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 1 s of wall time: a consumer that took 5 s over a frame gets the next one at once, then the one after
    1 s later, not 5 frames 40 ms apart (near copies of one moment, sent as 5 seconds)."""
    clock = [100.0]
    camera = _Camera(clock)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: camera)
    monkeypatch.setattr(capture_module.time, "monotonic", lambda: clock[0])
    times: list[float] = []
    for i, _ in enumerate(capture_module.capture("0", 1.0, max_frames=4)):
        times.append(round(clock[0], 2))
        if i == 1:
            clock[0] += 5.0  # the consumer is busy for 5 s
    assert times[:3] == [100.04, 101.0, 106.04] and times[3] >= 107.04, times
    assert camera.released
