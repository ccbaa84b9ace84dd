"""Video decoding: probing a file, sampling frames by ratio, and a reader thread that overlaps decoding.

Frames leave this module as RGB ``uint8`` arrays: the one place where OpenCV's BGR order is converted.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crowdcount.errors import VideoError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (``frame_count`` may be an estimate for raw streams)."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    codec: str
    codec_code: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": Path(self.path).name, "duration_s": round(self.duration_s, 3)}


@dataclass(frozen=True)
class Frame:
    """One decoded, sampled frame: 1-based ``index``, ``timestamp_ms`` and the ``rgb`` pixels."""

    index: int
    timestamp_ms: float
    rgb: np.ndarray


def _fourcc_text(code: int) -> str:
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\x00 ") if text.isprintable() else ""


#: How still-image files start (FFmpeg opens them as one-frame videos): magic bytes -> format.
_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _still_image_kind(path: Path) -> str | None:
    """The image format ``path`` starts with (PNG, JPEG, BMP, TIFF, WebP), else None."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _IMAGE_MAGIC.items() if head.startswith(magic)), None)


def probe_video(path: str | Path) -> VideoInfo:
    """Open ``path`` and read its metadata and first frame; :class:`VideoError` when it is not a video."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{str(path)!r} does not exist", "check the path")
    if not path.is_file():
        raise VideoError(f"{str(path)!r} is not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{str(path)!r} is empty (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(
                f"{str(path)!r} cannot be opened as a video (not a video, or a codec OpenCV's FFmpeg lacks)"
            )
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{str(path)!r} has no decodable frames (empty or corrupt video)")
        kind = _still_image_kind(path)
        if kind and not cap.grab():  # FFmpeg opens a photo as a one-frame video
            raise VideoError(f"{str(path)!r} is a still image ({kind}), not a video", "give a video file")
        code = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return VideoInfo(
            path=str(path),
            width=int(frame.shape[1]),
            height=int(frame.shape[0]),
            fps=fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0,
            frame_count=int(count) if math.isfinite(count) and count > 0 else 0,
            codec=_fourcc_text(code),
            codec_code=code,
        )
    finally:
        cap.release()


def sample_ratio(fps: float, sample_fps: float) -> float:
    """The share of a ``fps`` video's frames to analyse for ``sample_fps`` analysed frames a second: all of a
    video slower than that, or whose frame rate is unknown (0)."""
    return 1.0 if fps <= 0 else min(1.0, sample_fps / fps)


class FrameSampler:
    """Picks frames so that a ``frame_ratio`` share of them is analysed, evenly spread.

    Frame ``i`` (0-based) is sampled when ``floor(i * ratio)`` steps up, so ratio 0.2 picks frames
    0, 5, 10, ... and ratio 0.3 picks 0, 4, 7, 10, 14, ... The first frame is always sampled.
    """

    def __init__(self, frame_ratio: float) -> None:
        if isinstance(frame_ratio, bool) or not isinstance(frame_ratio, (int, float)):
            raise ValueError(f"frame_ratio must be a number, got {frame_ratio!r}")
        if not (0.0 < float(frame_ratio) <= 1.0) or not math.isfinite(frame_ratio):
            raise ValueError(f"frame_ratio must be in (0, 1], got {frame_ratio!r}")
        self.frame_ratio = float(frame_ratio)

    def _step(self, i: int) -> int:
        return math.floor(i * self.frame_ratio + 1e-9)

    def __call__(self, i: int) -> bool:
        return i == 0 or self._step(i) > self._step(i - 1)


_END = object()


class FrameReader:
    """Decodes a video in a background thread into a bounded queue, yielding sampled :class:`Frame` s.

    Unsampled frames are only ``grab()``-ed (no colour conversion, no copy). Iterating can stop early;
    :meth:`close` (or leaving a ``with`` block) stops the thread. After iteration, ``frames_decoded`` is
    the number of frames the decoder produced.
    """

    def __init__(self, info: VideoInfo, frame_ratio: float = 1.0, queue_size: int = 16) -> None:
        self.info = info
        self.sampler = FrameSampler(frame_ratio)
        self.frames_decoded = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="crowdcount-decoder", daemon=True)
        self._started = False

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        cap = cv2.VideoCapture(self.info.path)
        try:
            fps = self.info.fps
            i = 0
            while not self._stop.is_set():
                if not cap.grab():
                    break
                self.frames_decoded = i + 1
                if self.sampler(i):
                    ok, bgr = cap.retrieve()
                    if not ok or bgr is None:
                        break
                    timestamp = i * 1000.0 / fps if fps > 0 else float(cap.get(cv2.CAP_PROP_POS_MSEC))
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    if not self._put(Frame(i + 1, timestamp, rgb)):
                        return
                i += 1
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._error = exc
        finally:
            cap.release()
            self._put(_END)

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError("a FrameReader can be iterated once")
        self._started = True
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                yield item
        finally:
            self.close()
        if self._error is not None:
            raise VideoError(f"decoding {self.info.path!r} failed: {self._error}")

    def close(self) -> None:
        """Stop the decoder thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
