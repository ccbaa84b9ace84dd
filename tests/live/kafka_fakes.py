"""A :class:`FrameConsumer` without a broker, for unit tests of how it handles a fetched batch: its Kafka
consumer and producer are fakes given by the test, everything else is the real consumer."""

from __future__ import annotations

import types
from typing import Any

import cv2
import numpy as np

from crowdcount.analyzer.runner import FrameBatchRunner
from crowdcount.detectors import Detector
from crowdcount.live.brokers import MAX_SOURCES, FrameConsumer, _Delivery
from crowdcount.live.pipeline import LivePipelines, ProcessorFactory


def raw_message(source: str, offset: int, size: tuple[int, int] = (160, 120)) -> Any:
    """A raw-topic message of ``source`` (a grey JPEG frame) at ``offset`` of partition 0."""
    jpeg = cv2.imencode(".jpg", np.full((size[1], size[0], 3), 90, np.uint8))[1].tobytes()
    return types.SimpleNamespace(
        error=lambda: None,
        headers=lambda: [("source", source.encode()), ("captured_at_ms", str(1000 + offset).encode())],
        value=lambda: jpeg,
        key=lambda: source.encode(),
        partition=lambda: 0,
        offset=lambda: offset,
        timestamp=lambda: (0, 1000 + offset),
    )


def fake_consumer(
    detector: Detector,
    producer: Any,
    commits: list[bool],
    processors: ProcessorFactory | None = None,
    max_sources: int = MAX_SOURCES,
) -> FrameConsumer:
    """A consumer running ``detector`` (and ``processors``), producing through ``producer``; each offset commit
    is appended to ``commits``."""
    consumer = FrameConsumer.__new__(FrameConsumer)
    pipelines = LivePipelines(processors)
    consumer.__dict__.update(
        pipelines=pipelines,
        runner=FrameBatchRunner([detector], pipelines.template, 8),
        detectors=[detector],
        results_topic="results",
        raw_topic="raw",
        max_age_s=None,
        metrics=None,
        boxes=True,
        producer=producer,
        delivery=_Delivery(),
        analyzed=0,
        dropped=0,
        invalid=0,
        max_sources=max_sources,
        _sources=set(),
        _over=False,
        _unfit=set(),
        _rates={},
        consumer=types.SimpleNamespace(commit=lambda asynchronous: commits.append(asynchronous)),
        _kafka=types.SimpleNamespace(KafkaError=types.SimpleNamespace(_PARTITION_EOF=-191)),
    )
    return consumer
