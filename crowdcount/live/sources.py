"""Live sources: an RTSP/HTTP(S) stream, a webcam or a file, read by a thread that keeps only the latest frame.

A :class:`Source` owns one reader. In **live** mode (streams, webcams, files played with ``realtime``) the
reader never waits for inference: each new frame replaces the one not yet taken, and the replaced frame is
counted as dropped. In **file** mode (a file played as fast as it decodes) the reader waits until its frame
is taken, so no frame is ever dropped.

Streams fail. Every connection runs in its own thread, watched by a supervisor thread: a connection that
cannot open, ends, or stalls (no frame for ``read_timeout_s``: a read that hangs is a failure too) is
abandoned and a new one opened after an exponential backoff (``reconnect_delay_s`` doubling up to
``max_reconnect_delay_s``, with jitter; reset once a connection delivers frames). A hung read cannot be
interrupted from outside, so its thread is left to finish on its own (OpenCV's FFmpeg backend is also given
open and read timeouts, so it does) and its frames are ignored.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from crowdcount.analyzer.video import usable_fps
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

LIVE = "live"
FILE = "file"

#: Statuses a source goes through.
CONNECTING = "connecting"
STREAMING = "streaming"
STALLED = "stalled"
RECONNECTING = "reconnecting"
ENDED = "ended"
FAILED = "failed"
STOPPED = "stopped"

_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass(frozen=True)
class SourceSpec:
    """What a ``SOURCE`` argument names: ``kind`` is ``url``, ``webcam`` or ``file``; ``target`` what OpenCV
    opens; ``id`` the name used in outputs and metrics (never carries a URL's password)."""

    id: str
    kind: str
    target: str
    #: the id was given (``NAME=...``), not made from the target
    named: bool = field(default=False, compare=False)

    @property
    def display(self) -> str:
        """The target without credentials (for logs and tables)."""
        return redact(self.target) if self.kind == "url" else self.target


#: Query parameters that carry a camera's credentials (``?password=...``, ``&token=...``, ``&api_key=...``).
_SECRET_PARAM = re.compile(r"(?i)(pass|pwd|token|secret|key|auth|sig|credential)")


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` removed and the values of secret query parameters (``password``,
    ``token``, ``api_key``...) replaced by ``***``."""
    parts = urlsplit(url)
    query = "&".join(
        f"{name}=***" if sep and value and _SECRET_PARAM.search(name) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
    )
    if parts.username is None and parts.password is None and query == parts.query:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = host if parts.username is not None or parts.password is not None else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_source(text: str) -> SourceSpec:
    """Parse a ``SOURCE`` argument: ``[NAME=]URL``, ``[NAME=]WEBCAM_INDEX`` or ``[NAME=]FILE``.

    Raises :class:`ConfigError` for an empty name or a path that does not exist.
    """
    name = None
    head, sep, rest = text.partition("=")
    if sep and "/" not in head and "://" not in head:  # NAME=...: no URL has '=' before its '://'
        if not _NAME.match(head) and not Path(text).is_file():
            raise ConfigError(
                f"source name {head!r} (before '=') is not a name",
                "use letters, digits, '_', '.', ':' and '-', e.g. door=rtsp://cam/live",
            )
        if _NAME.match(head):
            name, text = head, rest
    if not text:
        raise ConfigError(f"source {name!r} has nothing after '='", "give NAME=URL, NAME=INDEX or NAME=FILE")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme == "file":
            return _file_spec(name, urlsplit(text).path)
        parts = urlsplit(text)
        default = (parts.hostname or "stream") + (f":{parts.port}" if parts.port else "") + parts.path.rstrip("/")
        return SourceSpec(name or default, "url", text, named=name is not None)
    if text.isdigit():
        return SourceSpec(name or f"webcam{int(text)}", "webcam", text, named=name is not None)
    return _file_spec(name, text)


def _file_spec(name: str | None, path: str) -> SourceSpec:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"source {path!r} is not a URL, a webcam index or an existing file",
            "give rtsp://..., http(s)://..., a webcam number (0) or a video file",
        )
    return SourceSpec(name or p.name, "file", str(p), named=name is not None)


def unique_ids(specs: list[SourceSpec]) -> list[SourceSpec]:
    """The specs with repeated ids made unique (``cam``, ``cam#2``, ...); :class:`ConfigError` when one name is
    given twice (``NAME=``: a cameras file's lines and zones are by name)."""
    named = [spec.id for spec in specs if spec.named]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ConfigError(f"two sources are named {twice[0]!r}", "give each source its own NAME=")
    seen: dict[str, int] = {}
    out = []
    for spec in specs:
        n = seen.get(spec.id, 0) + 1
        seen[spec.id] = n
        out.append(spec if n == 1 else SourceSpec(f"{spec.id}#{n}", spec.kind, spec.target))
    return out


@dataclass(frozen=True)
class CapturedFrame:
    """One frame of a source: its 1-based ``index`` (frames decoded by this source, across reconnects),
    ``captured_at`` (epoch seconds) and ``captured_mono`` (``time.monotonic()``) when it was decoded, the
    ``rgb`` pixels, and the ``position_ms`` of a file's frame in the file."""

    source: str
    index: int
    captured_at: float
    captured_mono: float
    rgb: np.ndarray
    position_ms: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


class RateMeter:
    """Events per second over the last ``window_s`` seconds (over the time since the first event, when shorter,
    and at least one second)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._first: float | None = None
        self._lock = threading.Lock()

    def add(self, n: int = 1, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._first is None:
                self._first = now
            self._times.extend([now] * n)
            self._prune(now)

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune(now)
            if self._first is None:
                return 0.0
            return len(self._times) / max(1.0, min(self.window_s, now - self._first))


class _Connection:
    """One attempt at reading a source, in its own thread."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.started = time.monotonic()
        self.last_activity = self.started
        #: True while the thread waits on purpose (file-mode hand-off, real-time pacing): not a stall.
        self.waiting = False
        self.frames = 0
        self.outcome = ""
        self.error = ""
        self.done = threading.Event()
        self.thread: threading.Thread | None = None


class Source:
    """Reads one source in background threads, keeping only the latest frame (see the module docstring).

    Args:
        spec: what to read (:func:`parse_source`).
        realtime: play a file at its own frame rate (times ``speed``): live mode, frames may drop.
        speed: playback rate of a ``realtime`` file (2: twice as fast as recorded).
        loop: start a file again at its end (otherwise the source ends there).
        open_timeout_s: longest wait for a connection's first frame.
        read_timeout_s: longest wait for any later frame; past it the connection counts as stalled.
        reconnect_delay_s, max_reconnect_delay_s: the exponential backoff between failed connections.
        max_retries: failed connections in a row before the source gives up (``None``: never).
        notify: called (from the reader thread) whenever a frame is ready.
        capture_factory: opens a capture (tests); default OpenCV with the timeouts.
    """

    def __init__(
        self,
        spec: SourceSpec,
        *,
        realtime: bool = False,
        speed: float = 1.0,
        loop: bool = False,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        reconnect_delay_s: float = 0.5,
        max_reconnect_delay_s: float = 30.0,
        max_retries: int | None = None,
        notify: Callable[[], None] | None = None,
        capture_factory: Callable[[SourceSpec], Any] | None = None,
    ) -> None:
        if speed <= 0:
            raise ConfigError(f"playback speed must be > 0, got {speed!r}")
        self.spec = spec
        self.id = spec.id
        self.mode = LIVE if (spec.kind != "file" or realtime) else FILE
        self.realtime = realtime and spec.kind == "file"
        self.speed = float(speed)
        self.loop = loop and spec.kind == "file"
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self.max_reconnect_delay_s = max_reconnect_delay_s
        self.max_retries = max_retries
        #: Called (from the reader thread) whenever a frame is ready (the watcher sets it).
        self.notify = notify
        self._capture_factory = capture_factory or self._open_capture

        self.status = CONNECTING
        self.last_error = ""
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.stalls = 0
        self.loops = 0
        self.size: tuple[int, int] | None = None
        self.size_changes = 0
        self.decode_meter = RateMeter()
        self.drop_meter = RateMeter()
        # capture times: the wall clock at the start plus the monotonic clock since, so that they never go back
        # (a wall clock set back by NTP or by hand)
        self._wall0, self._mono0 = time.time(), time.monotonic()

        self._latest: CapturedFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._generation = 0
        self._supervisor = threading.Thread(target=self._supervise, name=f"crowdcount-source-{spec.id}", daemon=True)

    # -- the consumer's side --------------------------------------------------------------------------
    def start(self) -> Source:
        """Start reading (returns self)."""
        self._supervisor.start()
        return self

    def take(self) -> CapturedFrame | None:
        """The latest frame not yet taken, or ``None`` (never blocks)."""
        with self._cond:
            frame, self._latest = self._latest, None
            if frame is not None:
                self._cond.notify_all()
        return frame

    @property
    def finished(self) -> bool:
        """The source will deliver no more frames (ended, failed or stopped) and none is waiting."""
        return not self._supervisor.is_alive() and self._supervisor.ident is not None and self._latest is None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading; waits up to ``timeout`` for the supervisor (a hung read is left behind)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout)
        if self.status not in (ENDED, FAILED):
            self.status = STOPPED

    def fail(self, reason: str) -> None:
        """Give this source up for ``reason`` (a setting that does not fit it): no more frames are read or
        handed out; does not wait for the reader."""
        self.last_error = reason
        self.status = FAILED
        self._stop.set()
        with self._cond:
            self._latest = None
            self._cond.notify_all()

    # -- the supervisor -------------------------------------------------------------------------------
    def _supervise(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._generation += 1
            conn = _Connection(self._generation)
            self.status = CONNECTING if self.frames_decoded == 0 else self.status
            conn.thread = threading.Thread(
                target=self._read, args=(conn,), name=f"crowdcount-read-{self.id}-{conn.generation}", daemon=True
            )
            conn.thread.start()
            self._watch(conn)
            if self._stop.is_set():
                break
            if conn.frames:
                failures = 0
            if conn.outcome == ENDED:
                if self.loop and conn.frames:
                    self.loops += 1
                    continue
                if self.spec.kind == "file" and self.frames_decoded == 0:  # an empty video: nothing was watched
                    self.last_error = f"no frame of {self.spec.display} could be decoded (an empty video)"
                    self.status = FAILED
                    logger.error("source %s failed: %s", self.id, self.last_error)
                    break
                self.status = ENDED
                logger.info("source %s ended after %d frames", self.id, self.frames_decoded)
                break
            failures += 1
            self.last_error = conn.error
            if self.spec.kind == "file" and conn.outcome == FAILED and self.frames_decoded == 0:
                self.status = FAILED  # a file that is no video never becomes one: opening it again is no cure
                logger.error("source %s failed: %s", self.id, conn.error)
                break
            if conn.outcome == STALLED:
                self.stalls += 1
                self.status = STALLED
            if self.max_retries is not None and failures > self.max_retries:
                self.status = FAILED
                logger.error("source %s failed %d times in a row, giving up: %s", self.id, failures, conn.error)
                break
            delay = min(self.max_reconnect_delay_s, self.reconnect_delay_s * 2 ** (failures - 1))
            delay *= random.uniform(0.8, 1.2)
            if conn.outcome != STALLED:
                self.status = RECONNECTING
            logger.warning("source %s: %s; reconnecting in %.1fs", self.id, conn.error, delay)
            self._stop.wait(delay)
            if not self._stop.is_set():
                self.reconnects += 1
                self.status = RECONNECTING

    def _watch(self, conn: _Connection) -> None:
        """Wait for the connection to end, abandoning it when it stalls."""
        while not conn.done.wait(0.05):
            if self._stop.is_set():
                self._generation += 1  # the reader sees it and leaves
                conn.done.wait(1.0)
                return
            limit = self.read_timeout_s if conn.frames else self.open_timeout_s
            if not conn.waiting and time.monotonic() - conn.last_activity > limit:
                self._generation += 1  # abandoned: its frames are ignored, it exits when its read returns
                conn.outcome = STALLED
                what = "no frame" if conn.frames else "no first frame"
                conn.error = f"{what} for {limit:g}s (stalled)"
                self.status = STALLED
                return

    # -- the reader -----------------------------------------------------------------------------------
    def _open_capture(self, spec: SourceSpec) -> Any:
        if spec.kind == "webcam":
            return cv2.VideoCapture(int(spec.target))
        if spec.kind == "url":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.read_timeout_s * 1000),
            ]
            return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(spec.target)

    def _current(self, conn: _Connection) -> bool:
        return conn.generation == self._generation and not self._stop.is_set()

    def _read(self, conn: _Connection) -> None:
        cap = None
        try:
            cap = self._capture_factory(self.spec)
            if not cap.isOpened():
                conn.outcome, conn.error = FAILED, f"cannot open {self.spec.display}"
                return
            fps = usable_fps(float(cap.get(cv2.CAP_PROP_FPS) or 0.0)) if self.realtime else 0.0
            if self.realtime and not fps:
                fps = 25.0
                logger.warning("source %s announces no frame rate: playing it at %g fps", self.id, fps)
            start = time.monotonic()
            n = 0
            while self._current(conn):
                ok, bgr = cap.read()
                if not self._current(conn):
                    return
                if not ok or bgr is None:
                    silent = time.monotonic() - conn.last_activity
                    limit = self.read_timeout_s if conn.frames else self.open_timeout_s
                    if self.spec.kind == "file":
                        conn.outcome = ENDED
                    elif silent >= 0.9 * limit:  # FFmpeg's own read timeout gave up first: a stall
                        what = "no frame" if conn.frames else "no first frame"
                        conn.outcome, conn.error = STALLED, f"{what} for {limit:g}s (stalled)"
                    else:
                        conn.outcome, conn.error = FAILED, "the stream ended" if conn.frames else "no frame decoded"
                    return
                now = time.monotonic()
                conn.last_activity = now
                position = float(cap.get(cv2.CAP_PROP_POS_MSEC)) if self.spec.kind == "file" else None
                n += 1
                if self.realtime:  # pace a file at its own rate
                    due = start + n / (fps * self.speed)
                    if due > now:
                        conn.waiting = True
                        self._stop.wait(due - now)
                        conn.waiting = False
                        if not self._current(conn):
                            return
                        now = time.monotonic()
                        conn.last_activity = now
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                conn.frames += 1
                self._deliver(conn, rgb, position)
        except Exception as exc:  # a backend error is a failed connection, never a dead source
            conn.outcome, conn.error = FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            if cap is not None:
                cap.release()
            conn.done.set()

    def _deliver(self, conn: _Connection, rgb: np.ndarray, position_ms: float | None) -> None:
        size = (int(rgb.shape[1]), int(rgb.shape[0]))
        if self.size is not None and size != self.size:
            self.size_changes += 1
            logger.warning("source %s: frame size changed from %dx%d to %dx%d", self.id, *self.size, *size)
        self.size = size
        self.frames_decoded += 1
        self.decode_meter.add()
        self.status = STREAMING
        mono = time.monotonic()
        frame = CapturedFrame(self.id, self.frames_decoded, self._wall0 + (mono - self._mono0), mono, rgb, position_ms)
        with self._cond:
            if self.mode == FILE:
                conn.waiting = True
                while self._latest is not None and self._current(conn):
                    self._cond.wait(0.1)
                conn.waiting = False
                conn.last_activity = time.monotonic()
                if not self._current(conn):
                    return
            elif self._latest is not None:
                self.frames_dropped += 1
                self.drop_meter.add()
            self._latest = frame
        if self.notify is not None:
            self.notify()
