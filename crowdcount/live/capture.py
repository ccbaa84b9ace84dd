"""Frames of a camera or a video file at a steady interval (the ``crowdcount edge`` client's frame source)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from crowdcount.errors import VideoError


def capture(source: str, every_s: float, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """BGR frames of a camera (``source`` a device index) every ``every_s`` seconds of wall time, or of a file
    every ``every_s`` seconds of video time."""
    import cv2

    camera = source.isdigit()
    cap = cv2.VideoCapture(int(source) if camera else source)
    if not cap.isOpened():
        raise VideoError(f"{source}: cannot be opened as a camera or a video file")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    stride = max(1, round(every_s * fps))
    sent, index, next_time = 0, 0, time.monotonic()
    try:
        while max_frames is None or sent < max_frames:
            ok, frame = cap.read()
            if not ok:
                return
            index += 1
            if camera:
                now = time.monotonic()
                if now < next_time:
                    continue
                next_time += every_s
                if next_time <= now:  # the consumer was slow: start again from now, no burst of frames to catch up
                    next_time = now + every_s
            elif (index - 1) % stride:
                continue
            sent += 1
            yield frame
    finally:
        cap.release()
