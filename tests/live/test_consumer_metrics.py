"""``stream consume`` exports the per-source rates its autoscalers and alerts read (``components/hpa`` scales the
consumers on ``crowdcount_live_dropped_fps``; docs/live.md divides dropped by decoded frames): frames received,
analysed and skipped as stale, as counters and as 5 s rates. A real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import time
import uuid

import numpy as np

from crowdcount.live import LiveMetrics
from crowdcount.live.brokers import FrameConsumer, FrameProducer
from crowdcount.live.sources import CapturedFrame

from conftest import SquareDetector


def _frame(source: str, index: int, captured_at: float) -> CapturedFrame:
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[0:4, 0:4] = (255, 0, 0)  # the red corner SquareDetector checks for
    rgb[40:64, 8:32] = 255
    return CapturedFrame(source, index, captured_at, time.monotonic(), rgb)


def test_a_consumer_exports_the_rates_its_scaler_reads(kafka_bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:6]
    raw, results = f"frames-{tag}", f"results-{tag}"
    producer = FrameProducer(kafka_bootstrap, raw, partitions=1)
    for index in range(1, 11):  # a minute old: skipped by --max-age
        producer.publish(_frame("late", index, time.time() - 60))
    for index in range(1, 7):
        producer.publish(_frame("now", index, time.time()))
    assert producer.close() == 0
    metrics = LiveMetrics()
    consumer = FrameConsumer(
        kafka_bootstrap, f"g-{tag}", raw, results, [SquareDetector()], partitions=1, max_age_s=30, metrics=metrics
    )
    consumer.run(duration_s=60, max_frames=6)
    assert (consumer.dropped, consumer.analyzed) == (10, 6)

    def value(name: str, source: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"source": source})

    assert value("crowdcount_live_frames_decoded_total", "late") == 10
    assert value("crowdcount_live_frames_decoded_total", "now") == 6
    assert value("crowdcount_live_frames_dropped_total", "late") == 10
    assert value("crowdcount_live_frames_analyzed_total", "now") == 6
    assert (value("crowdcount_live_dropped_fps", "late") or 0) > 0  # the HPA's signal
    assert value("crowdcount_live_dropped_fps", "now") == 0
    assert value("crowdcount_live_inference_fps", "late") == 0
    assert (value("crowdcount_live_inference_fps", "now") or 0) > 0
    assert (value("crowdcount_live_decode_fps", "late") or 0) > 0 and (
        value("crowdcount_live_decode_fps", "now") or 0
    ) > 0
