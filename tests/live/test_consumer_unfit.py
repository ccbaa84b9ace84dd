"""``stream consume``: frames of a camera whose lines do not fit its frames are skipped (said once); the other
cameras' frames are analysed and the offsets committed, so one camera's setting cannot stop the consumer. A
producer naming sources without end cannot grow the consumer without end (``max_sources``)."""

from __future__ import annotations

import logging
import types
from typing import Any

import cv2
import numpy as np
import pytest

from crowdcount.analyzer.counting import CountingProcessor, Line
from crowdcount.analyzer.runner import FrameBatchRunner
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.live.brokers import FrameConsumer, _Delivery
from crowdcount.live.pipeline import LivePipelines

from conftest import SquareDetector


def message(source: str, offset: int) -> Any:
    jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))[1].tobytes()
    return types.SimpleNamespace(
        error=lambda: None,
        headers=lambda: [("source", source.encode()), ("captured_at_ms", str(1000 + offset).encode())],
        value=lambda: jpeg,
        key=lambda: source.encode(),
        partition=lambda: 0,
        offset=lambda: offset,
        timestamp=lambda: (0, 1000 + offset),
    )


def consumer_of(processors: Any, produced: list[bytes], commits: list[bool], max_sources: int = 1000) -> Any:
    class Producer:
        def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
            produced.append(key)

        def flush(self, timeout: float) -> int:
            return 0

    detector = SquareDetector()
    detector.check_rgb = False
    pipelines = LivePipelines(processors)
    consumer = FrameConsumer.__new__(FrameConsumer)
    consumer.__dict__.update(
        pipelines=pipelines,
        runner=FrameBatchRunner([detector], pipelines.template, 8),
        detectors=[detector],
        results_topic="results",
        raw_topic="raw",
        max_age_s=None,
        metrics=None,
        boxes=True,
        producer=Producer(),
        delivery=_Delivery(),
        analyzed=0,
        dropped=0,
        invalid=0,
        _unfit=set(),
        _rates={},
        max_sources=max_sources,
        _sources=set(),
        _over=False,
        consumer=types.SimpleNamespace(commit=lambda asynchronous: commits.append(asynchronous)),
        _kafka=types.SimpleNamespace(KafkaError=types.SimpleNamespace(_PARTITION_EOF=-191)),
    )
    return consumer


def test_a_camera_whose_line_does_not_fit_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    produced: list[bytes] = []
    commits: list[bool] = []

    def processors(source: str) -> list[Any]:
        line = "gate=0,0,900,10" if source == "bad" else "door=0.5,0,0.5,1"
        tracker = TrackingProcessor(high_score=0.5, appearance=False)
        return [tracker, CountingProcessor([Line.parse(line)], tracking=tracker)]

    consumer = consumer_of(processors, produced, commits)
    with caplog.at_level(logging.ERROR, logger="crowdcount.live.brokers"):
        consumer._handle([message("good", 1), message("bad", 2), message("bad", 3), message("good", 4)], None)
    assert produced == [b"good", b"good"] and consumer.analyzed == 2 and consumer.invalid == 2
    assert commits == [False]
    said = [r.getMessage() for r in caplog.records if "bad" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("source bad: its frames are skipped: --line 'gate=0,0,900,10'")


def test_sources_beyond_max_sources_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    produced: list[bytes] = []
    commits: list[bool] = []
    consumer = consumer_of(None, produced, commits, max_sources=2)
    with caplog.at_level(logging.ERROR, logger="crowdcount.live.brokers"):
        consumer._handle([message(f"cam-{i}", i) for i in range(5)] + [message("cam-0", 9)], None)
    assert produced == [b"cam-0", b"cam-1", b"cam-0"] and consumer.invalid == 3
    assert commits == [False]
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("source 'cam-2' skipped: this consumer already serves 2 sources (max_sources)")
