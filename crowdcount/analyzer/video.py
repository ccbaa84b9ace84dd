"""Video decoding: probing a file, sampling frames by ratio, and a reader thread that overlaps decoding.

A "video" is a video file or an image-sequence folder (:class:`ImageSequence`: a MOTChallenge sequence, or a
folder of numbered frames), both read through :func:`open_capture`. Frames leave this module as RGB ``uint8``
arrays: the one place where OpenCV's BGR order is converted.
"""

from __future__ import annotations

import configparser
import logging
import math
import queue
import re
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


#: Image file extensions an image-sequence folder may hold.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
#: The frame rate assumed for an image-sequence folder that does not give one (no ``seqinfo.ini``).
SEQUENCE_FPS = 25.0
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class ImageSequence:
    """A folder of numbered images read as a video, in the order of their numbers.

    Two layouts: a **MOTChallenge sequence** (``SEQ/seqinfo.ini`` naming ``imDir``, ``frameRate`` and ``imExt``;
    the frames in ``SEQ/img1/``), given as ``SEQ`` or ``SEQ/img1``; and a **folder of exported frames**: at least
    two images of one extension whose names differ only in one number (``000001.jpg``, ``frame_0002.png``...),
    at :data:`SEQUENCE_FPS` frames a second unless a ``seqinfo.ini`` beside them says otherwise. ``folder`` is
    the sequence's own folder (``SEQ``), which names the video.
    """

    folder: Path
    files: tuple[Path, ...]
    fps: float
    fps_given: bool

    @classmethod
    def find(cls, path: str | Path) -> ImageSequence | None:
        """The image sequence in the folder ``path``, or None when it holds none (or cannot be listed)."""
        try:
            return cls._find(Path(path))
        except OSError as exc:  # e.g. lost+found on a mounted disk: permission denied
            logger.debug("%s cannot be read as an image sequence: %s", path, exc)
            return None

    @classmethod
    def _find(cls, path: Path) -> ImageSequence | None:
        if not path.is_dir():
            return None
        if path.name in ("", ".."):  # "." or "..": the folder's own name names the video
            path = path.resolve()
        info = _seqinfo(path)
        if info is None and (path.parent / "seqinfo.ini").is_file():
            parent = _seqinfo(path.parent)
            if parent is not None and parent[0] == path.name:
                return cls.find(path.parent)
        if info is not None:
            image_dir, fps, ext = info
            # its imDir (img1/), else the frames beside it (a seqinfo.ini giving a folder of frames its rate)
            files = _numbered_images(path / image_dir, ext) or _numbered_images(path, ext)
            if files:
                return cls(path, files, fps or SEQUENCE_FPS, fps is not None)
            return None
        files = _numbered_images(path, None)
        return cls(path, files, SEQUENCE_FPS, False) if len(files) >= 2 else None


def _seqinfo(folder: Path) -> tuple[str, float | None, str | None] | None:
    """``(imDir, frameRate or None, imExt or None)`` from ``folder/seqinfo.ini``; None without a usable one."""
    ini = folder / "seqinfo.ini"
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(ini, encoding="utf-8-sig")  # a byte order mark (Windows editors) is skipped
        section = parser["Sequence"]
        image_dir = section.get("imDir", "img1").strip() or "img1"
        rate = section.get("frameRate")
        fps = (usable_fps(float(rate)) or None) if rate else None
    except (configparser.Error, KeyError, ValueError, UnicodeDecodeError):
        logger.warning("%s has no usable [Sequence] section: its folder is not read as a sequence", ini)
        return None
    ext = (section.get("imExt") or "").strip().lower()
    return image_dir, fps, ("." + ext.lstrip(".")) if ext else None  # "jpg" as ".jpg"


def _numbered_images(folder: Path, ext: str | None) -> tuple[Path, ...]:
    """The images of ``folder`` (of extension ``ext``, else of its one image extension; hidden files left out)
    sorted by their number, when their names differ only in that number; else ()."""
    if not folder.is_dir():
        return ()
    # hidden files are not frames: macOS leaves "._000001.jpg" (AppleDouble) beside each copied file
    images = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    ]
    if ext is not None:
        images = [p for p in images if p.suffix.lower() == ext]
    if not images or len({p.suffix.lower() for p in images}) != 1:
        return ()
    keyed = []
    shape = None
    for image in images:
        parts = _NUMBER.split(image.stem)
        numbers = parts[1::2]
        if len(numbers) == 0:
            return ()
        # The last number counts; everything else must be the same in every name.
        this = (tuple(parts[:-2]), parts[-1])
        if shape is None:
            shape = this
        elif this != shape:
            return ()
        keyed.append((int(numbers[-1]), image.name, image))
    return tuple(p for _, _, p in sorted(keyed))


class SequenceCapture:
    """The part of ``cv2.VideoCapture``'s interface this package uses, over an :class:`ImageSequence`.

    A frame that cannot be read, or whose size differs from the first frame's, raises :class:`VideoError`
    naming the file (a capture would silently end the video there)."""

    def __init__(self, sequence: ImageSequence) -> None:
        self.sequence = sequence
        self._next = 0
        self._size: tuple[int, int] | None = None

    def isOpened(self) -> bool:  # cv2.VideoCapture's name
        return bool(self.sequence.files)

    def grab(self) -> bool:
        if self._next >= len(self.sequence.files):
            return False
        self._next += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        if self._next == 0:
            return False, None
        file = self.sequence.files[self._next - 1]
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise VideoError(f"{str(file)!r} in the image sequence cannot be read as an image")
        size = (int(image.shape[1]), int(image.shape[0]))
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise VideoError(
                f"{str(file)!r} is {size[0]}x{size[1]}, the sequence's first frame {self._size[0]}x{self._size[1]}",
                "every frame of an image sequence must have one size",
            )
        return True, image

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self.retrieve() if self.grab() else (False, None)

    def get(self, prop: int) -> float:
        fps = self.sequence.fps
        if prop == cv2.CAP_PROP_FPS:
            return fps
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self.sequence.files))
        if prop == cv2.CAP_PROP_POS_FRAMES:
            return float(self._next)
        if prop == cv2.CAP_PROP_POS_MSEC:
            return max(0, self._next - 1) * 1000.0 / fps
        return 0.0

    def release(self) -> None:
        self._next = len(self.sequence.files)


def usable_fps(fps: float) -> float:
    """``fps`` as a frame rate, or 0.0 (unknown) when it is not a finite number in (0, 1000): what containers
    report for raw streams and still images."""
    return fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0


def open_capture(path: str | Path) -> Any:
    """A ``cv2.VideoCapture`` of the video file ``path``, or a :class:`SequenceCapture` when ``path`` is an
    image-sequence folder."""
    sequence = ImageSequence.find(path)
    return SequenceCapture(sequence) if sequence is not None else cv2.VideoCapture(str(path))


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
    """Open ``path`` (a video file or an image-sequence folder) and read its metadata and first frame;
    :class:`VideoError` when it is not a video."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{str(path)!r} does not exist", "check the path")
    if path.is_dir():
        return _probe_sequence(path)
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
            fps=usable_fps(fps),
            frame_count=int(count) if math.isfinite(count) and count > 0 else 0,
            codec=_fourcc_text(code),
            codec_code=code,
        )
    finally:
        cap.release()


def _probe_sequence(path: Path) -> VideoInfo:
    sequence = ImageSequence.find(path)
    if sequence is None:
        raise VideoError(
            f"{str(path)!r} is a folder, not a video or an image sequence",
            "give a video file, or a folder of numbered frames (000001.jpg, ...) or a MOTChallenge sequence",
        )
    if not sequence.fps_given:
        logger.warning(
            "%s: an image sequence without a frame rate, read at %g frames a second "
            "(a seqinfo.ini with [Sequence] frameRate=N in its folder sets it)",
            sequence.folder,
            SEQUENCE_FPS,
        )
    ok, frame = SequenceCapture(sequence).read()
    if not ok or frame is None:  # pragma: no cover - find() returns sequences with images; retrieve raises
        raise VideoError(f"{str(path)!r} has no frames")
    return VideoInfo(
        path=str(sequence.folder),
        width=int(frame.shape[1]),
        height=int(frame.shape[0]),
        fps=sequence.fps,
        frame_count=len(sequence.files),
        codec=f"images ({sequence.files[0].suffix.lower().lstrip('.')})",
        codec_code=0,
    )


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
        cap = None
        try:
            cap = open_capture(self.info.path)
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
            if cap is not None:
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
        if isinstance(self._error, VideoError):
            raise self._error
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
