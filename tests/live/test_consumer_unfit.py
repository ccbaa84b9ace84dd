"""``stream consume``: frames of a camera whose lines do not fit its frames are skipped (said once); the other
cameras' frames are analysed and the offsets committed, so one camera's setting cannot stop the consumer. A
producer naming sources without end cannot grow the consumer without end (``max_sources``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from crowdcount.analyzer.counting import CountingProcessor, Line
from crowdcount.analyzer.tracking import TrackingProcessor

from .kafka_fakes import fake_consumer, raw_message
from conftest import SquareDetector


class Producer:
    def __init__(self, produced: list[bytes]) -> None:
        self.produced = produced

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        self.produced.append(key)

    def flush(self, timeout: float) -> int:
        return 0


def detector() -> SquareDetector:
    found = SquareDetector()
    found.check_rgb = False  # grey frames: nothing found, every frame still analysed
    return found


def test_a_camera_whose_line_does_not_fit_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    produced: list[bytes] = []
    commits: list[bool] = []

    def processors(source: str) -> list[Any]:
        line = "gate=0,0,900,10" if source == "bad" else "door=0.5,0,0.5,1"
        tracker = TrackingProcessor(high_score=0.5, appearance=False)
        return [tracker, CountingProcessor([Line.parse(line)], tracking=tracker)]

    consumer = fake_consumer(detector(), Producer(produced), commits, processors)
    with caplog.at_level(logging.ERROR, logger="crowdcount.live.brokers"):
        consumer._handle(
            [raw_message("good", 1), raw_message("bad", 2), raw_message("bad", 3), raw_message("good", 4)], None
        )
    assert produced == [b"good", b"good"] and consumer.analyzed == 2 and consumer.invalid == 2
    assert commits == [False]
    said = [r.getMessage() for r in caplog.records if "bad" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("source bad: its frames are skipped: --line 'gate=0,0,900,10'")


def test_sources_beyond_max_sources_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    produced: list[bytes] = []
    commits: list[bool] = []
    consumer = fake_consumer(detector(), Producer(produced), commits, max_sources=2)
    with caplog.at_level(logging.ERROR, logger="crowdcount.live.brokers"):
        consumer._handle([raw_message(f"cam-{i}", i) for i in range(5)] + [raw_message("cam-0", 9)], None)
    assert produced == [b"cam-0", b"cam-1", b"cam-0"] and consumer.invalid == 3
    assert commits == [False]
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("source 'cam-2' skipped: this consumer already serves 2 sources (max_sources)")
