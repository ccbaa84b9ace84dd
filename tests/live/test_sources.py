"""Live sources: parsing, file mode vs live mode, reconnection to a real MJPEG server, stalls, size changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdcount.errors import ConfigError
from crowdcount.live import FILE, LIVE, Source, SourceSpec, parse_source, unique_ids
from crowdcount.live.sources import ENDED, FAILED, STALLED, STREAMING, redact

from .mjpeg import MjpegServer, free_port, solid_jpegs


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_parse_source_kinds_names_and_credentials(squares_clip: Path) -> None:
    assert parse_source("rtsp://user:secret@cam.local:554/live") == SourceSpec(
        "cam.local:554/live", "url", "rtsp://user:secret@cam.local:554/live"
    )
    assert parse_source("rtsp://user:secret@cam.local:554/live").display == "rtsp://cam.local:554/live"
    assert redact("http://a:b@h/x?q=1") == "http://h/x?q=1"
    assert parse_source("http://h/s.mjpg?res=hd&fps=5").id == "h/s.mjpg"
    assert parse_source("0") == SourceSpec("webcam0", "webcam", "0")
    assert parse_source("door=2") == SourceSpec("door", "webcam", "2")
    assert parse_source(f"gate={squares_clip}") == SourceSpec("gate", "file", str(squares_clip))
    assert parse_source(str(squares_clip)).id == "squares.mp4"
    assert [s.id for s in unique_ids([parse_source("0"), parse_source("webcam0=1")])] == ["webcam0", "webcam0#2"]
    with pytest.raises(ConfigError, match="two sources are named 'door'"):
        unique_ids([parse_source("door=0"), parse_source("door=1")])
    with pytest.raises(ConfigError, match="is not a URL, a webcam index or an existing file"):
        parse_source("nothere.mp4")
    with pytest.raises(ConfigError, match="has nothing after"):
        parse_source("cam=")


def test_file_mode_never_drops_a_frame(squares_clip: Path) -> None:
    source = Source(parse_source(str(squares_clip))).start()
    assert source.mode == FILE
    taken = []
    try:
        while not source.finished:
            frame = source.take()
            if frame is None:
                time.sleep(0.005)
                continue
            taken.append(frame.index)
            time.sleep(0.01)  # slower than decoding: the reader must wait, not drop
    finally:
        source.stop()
    assert taken == list(range(1, 25))
    assert (source.frames_decoded, source.frames_dropped, source.status) == (24, 0, ENDED)


def test_live_mode_keeps_the_latest_frame_and_counts_drops(squares_clip: Path) -> None:
    source = Source(parse_source(str(squares_clip)), realtime=True, speed=8.0).start()  # 80 fps
    assert source.mode == LIVE
    taken = []
    try:
        while not source.finished:
            frame = source.take()
            if frame is not None:
                taken.append(frame.index)
            time.sleep(0.06)  # ~16 fps of "inference"
    finally:
        source.stop()
    assert source.frames_decoded == 24 and source.status == ENDED
    assert taken == sorted(taken) and taken[-1] == 24
    assert source.frames_dropped > 0
    assert len(taken) + source.frames_dropped == 24


def test_realtime_paces_a_file_at_its_frame_rate(squares_clip: Path) -> None:
    source = Source(parse_source(str(squares_clip)), realtime=True, speed=2.0)  # 24 frames at 20 fps: 1.2 s
    started = time.monotonic()
    source.start()
    try:
        wait_for(lambda: source.finished or source.status == ENDED)
    finally:
        source.stop()
    assert time.monotonic() - started >= 1.1


def test_reconnects_when_the_server_stops_and_comes_back(mjpeg: MjpegServer) -> None:
    source = Source(parse_source(mjpeg.url), read_timeout_s=1.0, reconnect_delay_s=0.1, max_reconnect_delay_s=0.4)
    source.start()
    try:
        wait_for(lambda: source.frames_decoded >= 5)
        assert source.status == STREAMING and source.size == (480, 360)
        mjpeg.stop()
        wait_for(lambda: source.status != STREAMING)
        before = source.frames_decoded
        time.sleep(0.5)  # a few failed attempts while the server is down
        assert source.frames_decoded == before
        mjpeg.start()
        wait_for(lambda: source.frames_decoded >= before + 5)
        assert source.status == STREAMING
        assert source.reconnects >= 1 and mjpeg.connections >= 2
    finally:
        source.stop()


def test_frame_size_change_after_a_reconnect(mjpeg: MjpegServer) -> None:
    source = Source(parse_source(mjpeg.url), read_timeout_s=1.0, reconnect_delay_s=0.1, max_reconnect_delay_s=0.2)
    source.start()
    try:
        wait_for(lambda: source.frames_decoded >= 3)
        mjpeg.stop()
        mjpeg.jpegs = solid_jpegs(10, (320, 240))
        mjpeg.start()
        wait_for(lambda: source.size == (320, 240))
        wait_for(lambda: (frame := source.take()) is not None and frame.rgb.shape == (240, 320, 3))
        assert source.size_changes == 1
    finally:
        source.stop()


def test_a_stalled_stream_is_detected_and_reconnected(mjpeg: MjpegServer) -> None:
    mjpeg.stall_after = 3  # each connection: 3 frames, then silence with the socket held open
    source = Source(parse_source(mjpeg.url), read_timeout_s=0.5, reconnect_delay_s=0.05, max_reconnect_delay_s=0.1)
    source.start()
    try:
        wait_for(lambda: source.stalls >= 2)
        assert source.frames_decoded >= 6  # frames from at least two connections
        assert mjpeg.connections >= 2 and source.last_error == "no frame for 0.5s (stalled)"
    finally:
        source.stop()


class HangingCapture:
    """A capture whose read never returns until released: what a hung network read looks like."""

    def __init__(self, hang: threading.Event) -> None:
        self.hang = hang
        self.frames = 0

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 0.0

    def read(self) -> tuple[bool, object]:
        import numpy as np

        if self.frames < 2:
            self.frames += 1
            return True, np.zeros((8, 8, 3), np.uint8)
        self.hang.wait()
        return False, None

    def release(self) -> None:
        pass


def test_a_read_that_hangs_counts_as_a_failure() -> None:
    hang = threading.Event()
    opened = []

    def factory(spec: SourceSpec) -> HangingCapture:
        opened.append(spec)
        return HangingCapture(hang)

    spec = SourceSpec("hung", "url", "rtsp://127.0.0.1:1/none")
    source = Source(spec, read_timeout_s=0.3, reconnect_delay_s=0.05, capture_factory=factory).start()
    try:
        wait_for(lambda: len(opened) >= 3)  # each hung read abandoned, a new connection opened
        assert source.stalls >= 2 and source.frames_decoded >= 4
        assert source.status in (STALLED, "reconnecting", STREAMING)
    finally:
        hang.set()
        source.stop()


def test_a_source_that_never_opens_gives_up_after_its_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens there
    source = Source(parse_source(url), open_timeout_s=1.0, reconnect_delay_s=0.05, max_retries=2).start()
    try:
        wait_for(lambda: source.status == FAILED)
    finally:
        source.stop()
    assert source.reconnects == 2 and source.frames_decoded == 0
    assert source.last_error.startswith("cannot open http://127.0.0.1:")


def test_capture_times_never_go_back_when_the_wall_clock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall clock set back 10 minutes between two frames: the second frame's capture time (the records'
    ``timestamp``) is still after the first's."""
    wall = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])

    class Clocked:
        n = 0

        def isOpened(self) -> bool:
            return True

        def get(self, prop: int) -> float:
            return 0.0

        def read(self) -> tuple[bool, np.ndarray | None]:
            self.n += 1
            if self.n == 2:
                wall[0] -= 600.0
            return (True, np.zeros((4, 4, 3), np.uint8)) if self.n <= 3 else (False, None)

        def release(self) -> None:
            pass

    spec = SourceSpec("clip", "file", "clip.mp4")
    source = Source(spec, capture_factory=lambda _: Clocked()).start()  # file mode: no frame dropped
    frames: list[Any] = []
    wait_for(lambda: bool(frames.append(source.take()) or source.finished))
    times = [f.captured_at for f in frames if f is not None]
    assert len(times) == 3 and times == sorted(times) and times[0] >= 1_000_000.0, times
