"""The Watcher with the fake SquareDetector (exact counts), several sources, a dead one, intervals, metrics;
and once with the real default detector on a real MJPEG stream."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crowdcount.config import DEFAULTS, build_detectors
from crowdcount.detectors import Detections
from crowdcount.live import IntervalAggregator, JsonLinesSink, LiveMetrics, Source, Watcher, parse_source
from crowdcount.live.sources import ENDED, FAILED, STREAMING
from crowdcount.metrics import serve_metrics

from .mjpeg import MjpegServer, free_port
from .test_sources import wait_for
from conftest import SquareDetector, squares_in_frame


def records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_file_mode_counts_every_frame_exactly(squares_clip: Path) -> None:
    out = io.StringIO()
    watcher = Watcher([SquareDetector()], [Source(parse_source(f"a={squares_clip}"))], [JsonLinesSink(out)])
    rows = watcher.run(duration=30)
    got = records(out)
    assert [r["frame_index"] for r in got] == list(range(1, 25))
    assert [r["counts"]["Human"] for r in got] == [squares_in_frame(i) for i in range(24)]
    first = got[1]
    assert first["source"] == "a" and (first["width"], first["height"]) == (160, 120)
    assert first["Human"]["scores"] == [0.9] and len(first["Human"]["boxes"][0]) == 4
    assert first["time"].endswith("Z") and first["latency_ms"] >= 0
    (row,) = rows
    assert (row.frames_decoded, row.frames_analyzed, row.frames_dropped) == (24, 24, 0)
    assert row.people_max == {"Human": 3} and row.status == "ended" and row.mode == "file"


def test_a_file_shows_as_ended_only_once_its_last_frame_is_counted(squares_clip: Path) -> None:
    release = threading.Event()

    class SlowLast(SquareDetector):
        def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
            self.seen = getattr(self, "seen", 0) + len(frames)
            if self.seen == 24:  # the clip's last frame: the file has ended meanwhile, this frame is not counted yet
                release.wait(30)
            return super()._detect(frames)

    source = Source(parse_source(f"a={squares_clip}"))
    watcher = Watcher([SlowLast()], [source]).start()
    try:
        # the file has ended and the frames before the held one are counted (under load they trail the reader)
        wait_for(lambda: source.status == ENDED and watcher.snapshot()[0].frames_analyzed >= 23)
        (row,) = watcher.snapshot()
        assert (row.status, row.frames_decoded, row.frames_analyzed) == (STREAMING, 24, 23)
        release.set()
        assert watcher.wait(30)
        (row,) = watcher.snapshot()
        assert (row.status, row.frames_decoded, row.frames_analyzed) == (ENDED, 24, 24)
    finally:
        release.set()
        watcher.stop()


def test_two_sources_and_a_dead_one_that_does_not_stop_them(squares_clip: Path, mjpeg: MjpegServer) -> None:
    detector = SquareDetector()
    detector.check_rgb = False  # the stream is a real video, without the test clip's red corner
    dead = f"dead=http://127.0.0.1:{free_port()}/stream.mjpg"
    sources = [
        Source(parse_source(f"cam={mjpeg.url}"), read_timeout_s=1.0),
        Source(parse_source(dead), open_timeout_s=1.0, reconnect_delay_s=0.05, max_retries=1),
        Source(parse_source(f"clip={squares_clip}"), loop=True),
    ]
    out = io.StringIO()
    watcher = Watcher([detector], sources, [JsonLinesSink(out)], boxes=False).start()
    try:
        wait_for(lambda: sources[1].status == FAILED)
        seen = len(records(out))
        wait_for(lambda: len([r for r in records(out)[seen:] if r["source"] == "cam"]) >= 5)
        assert not watcher.done and watcher.error is None
    finally:
        watcher.stop()
    got = records(out)
    assert {r["source"] for r in got} == {"cam", "clip"}
    assert "Human" not in got[0] and set(got[0]["counts"]) == {"Human"}
    by_source = {row.source: row for row in watcher.snapshot()}
    assert by_source["dead"].status == FAILED and by_source["dead"].frames_decoded == 0
    assert by_source["clip"].frames_analyzed > 24  # looped
    assert watcher.failed_sources == ["dead"]


def test_interval_records_aggregate_per_source() -> None:
    agg = IntervalAggregator(1.0, ["a", "b"], ["Human"], now=100.0)
    agg.add("a", 0.05, {"Human": 2})
    agg.add("a", 0.10, {"Human": 4})
    assert not agg.due(now=100.5)
    out = agg.flush({"a": 3, "b": 0}, {"a": STREAMING, "b": "reconnecting"}, now=101.2)
    a, b = out
    assert (a["source"], a["frames_analyzed"], a["frames_dropped"], a["latency_ms_max"]) == ("a", 2, 3, 100.0)
    assert a["counts"] == {"Human": {"last": 4, "max": 4, "mean": 3.0}} and a["interval_s"] == 1.0
    assert (b["frames_analyzed"], b["counts"], b["status"]) == (0, {"Human": None}, "reconnecting")
    agg.add("a", 0.01, {"Human": 1})
    (a2, _) = agg.flush({"a": 5, "b": 0}, {}, now=102.0)
    assert (a2["frames_analyzed"], a2["frames_dropped"]) == (1, 2)  # only this interval's drops


def test_watcher_with_every_writes_interval_records(squares_clip: Path) -> None:
    out = io.StringIO()
    source = Source(parse_source(str(squares_clip)), realtime=True, speed=2.0)  # 1.2 s
    Watcher([SquareDetector()], [source], [JsonLinesSink(out)], every=0.5).run(duration=10)
    got = records(out)
    assert len(got) >= 2 and all("start" in r and "frame_index" not in r for r in got)
    assert sum(r["frames_analyzed"] for r in got) + source.frames_dropped == 24
    assert max(r["counts"]["Human"]["max"] for r in got if r["counts"]["Human"]) == 3


def test_metrics_are_served_over_http(squares_clip: Path) -> None:
    metrics = LiveMetrics()
    server = serve_metrics(metrics.registry, 0, host="127.0.0.1")
    try:
        Watcher([SquareDetector()], [Source(parse_source(f"a={squares_clip}"))], metrics=metrics).run(duration=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    src = (("source", "a"),)
    assert got[("crowdcount_live_frames_decoded_total", src)] == 24
    assert got[("crowdcount_live_frames_analyzed_total", src)] == 24
    assert got[("crowdcount_live_latency_seconds_count", src)] == 24
    assert got[("crowdcount_live_people", (("category", "Human"), ("source", "a")))] == squares_in_frame(23)
    assert ("crowdcount_live_dropped_fps", src) in got and ("crowdcount_live_decode_fps", src) in got


@pytest.mark.real_model
def test_real_default_detector_counts_people_in_a_real_stream(mjpeg: MjpegServer) -> None:
    name, arguments = DEFAULTS["human_detection"]["detectors"][0]
    detectors = build_detectors([[name, arguments]])
    out = io.StringIO()
    source = Source(parse_source(f"pets={mjpeg.url}"), read_timeout_s=5.0)
    watcher = Watcher(detectors, [source], [JsonLinesSink(out)])
    watcher.load()
    watcher.start()
    try:
        wait_for(lambda: len(records(out)) >= 5, seconds=60)
    finally:
        watcher.stop()
    got = records(out)
    assert all(r["source"] == "pets" and (r["width"], r["height"]) == (480, 360) for r in got)
    assert max(r["counts"]["Human"] for r in got) >= 3  # PETS09: several walkers in every frame
    assert all(r["latency_ms"] < 10_000 for r in got)
    assert time.time() - got[-1]["timestamp"] < 60


def test_interval_records_never_go_back_when_the_wall_clock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """An NTP step back of 10 minutes: the next interval still ends 1 s after it began (no 10 minutes without a
    record, no negative interval), its times carry on from the last record's."""
    clock = {"wall": 1000.0, "mono": 50.0}
    monkeypatch.setattr(time, "time", lambda: clock["wall"])
    monkeypatch.setattr(time, "monotonic", lambda: clock["mono"])
    agg = IntervalAggregator(1.0, ["a"], ["Human"])
    agg.reset()
    agg.add("a", 0.05, {"Human": 2})
    clock["wall"], clock["mono"] = 400.0, 51.25  # 1.25 s later, the wall clock set back 601.25 s
    assert agg.due()
    (record,) = agg.flush({"a": 0}, {"a": STREAMING})
    assert (record["start"], record["end"], record["interval_s"]) == (
        "1970-01-01T00:16:40.000Z", "1970-01-01T00:16:41.000Z", 1.0)  # fmt: skip
    clock["mono"] = 51.5
    (last,) = agg.flush({"a": 0}, {"a": STREAMING}, force=True)
    assert (last["start"], last["end"], last["interval_s"]) == (
        "1970-01-01T00:16:41.000Z",
        "1970-01-01T00:16:41.500Z",
        0.5,
    )
