"""Live streams: count people in RTSP/HTTP(S) streams, webcams and files played in real time.

A service layer beside :mod:`crowdcount.aws`: it uses the detectors (and never the CLI). :class:`Source`
reads one stream in background threads, keeping only its latest frame and reconnecting on failure;
:class:`Watcher` runs the detectors (through :class:`crowdcount.analyzer.runner.FrameBatchRunner`, with
one tracking / line / zone pipeline per source, :mod:`crowdcount.live.pipeline`) over several sources and writes
records to sinks (JSON lines here,
Redis Streams and Kafka in :mod:`crowdcount.live.brokers`); :class:`LiveMetrics` exposes Prometheus metrics.
"""

from __future__ import annotations

from crowdcount.live.metrics import LiveMetrics
from crowdcount.live.outputs import IntervalAggregator, JsonLinesSink, frame_record
from crowdcount.live.sources import FILE, LIVE, CapturedFrame, Source, SourceSpec, parse_source, unique_ids
from crowdcount.live.watcher import SourceStatus, Watcher

__all__ = [
    "FILE",
    "LIVE",
    "CapturedFrame",
    "IntervalAggregator",
    "JsonLinesSink",
    "LiveMetrics",
    "Source",
    "SourceSpec",
    "SourceStatus",
    "Watcher",
    "frame_record",
    "parse_source",
    "unique_ids",
]
