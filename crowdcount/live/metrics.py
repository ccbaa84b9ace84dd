"""The live watcher's Prometheus metrics, in their own registry (serve with :func:`crowdcount.metrics.serve_metrics`).

Counters are the canonical series (``rate()`` of them gives decode, inference and dropped fps); the
``*_fps`` gauges hold the same rates over the last 5 seconds for dashboards and autoscalers that read a
plain value.
"""

from __future__ import annotations

from typing import Any

from crowdcount.metrics import LATENCY_BUCKETS

PREFIX = "crowdcount_live"


class LiveMetrics:
    """Per-source metrics of a watcher (or a Kafka frame consumer)."""

    def __init__(self, registry: Any | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.decoded = Counter(f"{PREFIX}_frames_decoded", "Frames decoded per source.", ["source"], registry=r)
        self.analyzed = Counter(f"{PREFIX}_frames_analyzed", "Frames analysed per source.", ["source"], registry=r)
        self.dropped = Counter(
            f"{PREFIX}_frames_dropped", "Frames dropped (replaced before inference) per source.", ["source"], registry=r
        )
        self.reconnects = Counter(f"{PREFIX}_reconnects", "Reconnections per source.", ["source"], registry=r)
        self.latency = Histogram(
            f"{PREFIX}_latency_seconds",
            "End-to-end latency, capture to result, per source.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.people = Gauge(
            f"{PREFIX}_people", "Count in the latest analysed frame.", ["source", "category"], registry=r
        )
        self.decode_fps = Gauge(
            f"{PREFIX}_decode_fps", "Frames decoded per second (5 s window).", ["source"], registry=r
        )
        self.inference_fps = Gauge(
            f"{PREFIX}_inference_fps", "Frames analysed per second (5 s window).", ["source"], registry=r
        )
        self.dropped_fps = Gauge(
            f"{PREFIX}_dropped_fps",
            "Frames dropped per second (5 s window): the scale-out signal.",
            ["source"],
            registry=r,
        )
        self.up = Gauge(f"{PREFIX}_source_up", "1 while the source delivers frames, else 0.", ["source"], registry=r)
        self.line_crossings = Counter(
            f"{PREFIX}_line_crossings",
            "People crossing a counting line, per source, line and direction (in, out).",
            ["source", "line", "direction"],
            registry=r,
        )
        self.zone_occupancy = Gauge(
            f"{PREFIX}_zone_occupancy", "People in a counting zone in the latest frame.", ["source", "zone"], registry=r
        )
        self.zone_visitors = Counter(
            f"{PREFIX}_zone_visitors", "People seen inside a counting zone.", ["source", "zone"], registry=r
        )
        self.unique_people = Gauge(f"{PREFIX}_unique_people", "Tracked people since start.", ["source"], registry=r)
        self._seen: dict[str, dict[str, float]] = {}
        self._totals: dict[tuple[str, ...], float] = {}

    def sync_counter(self, counter: Any, source: str, total: float) -> None:
        """Raise ``counter{source}`` to ``total`` (counters kept by a reader thread are copied in)."""
        seen = self._seen.setdefault(source, {})
        key = counter._name
        delta = total - seen.get(key, 0.0)
        if delta > 0:
            counter.labels(source).inc(delta)
            seen[key] = total

    def sync_totals(self, source: str, totals: dict[str, Any]) -> None:
        """Copy a source's ``lines``, ``zones`` and ``unique_people`` totals (see
        :class:`crowdcount.live.pipeline.LivePipelines`) into the counters and gauges."""
        for line, counts in totals.get("lines", {}).items():
            for direction, n in counts.items():
                self._raise(self.line_crossings, (source, line, direction), n)
        for zone, figures in totals.get("zones", {}).items():
            self.zone_occupancy.labels(source, zone).set(figures["occupancy"])
            self._raise(self.zone_visitors, (source, zone), figures["visitors"])
        if "unique_people" in totals:
            self.unique_people.labels(source).set(totals["unique_people"])

    def _raise(self, counter: Any, labels: tuple[str, ...], total: float) -> None:
        key = (counter._name, *labels)
        delta = total - self._totals.get(key, 0.0)
        if delta > 0:
            counter.labels(*labels).inc(delta)
            self._totals[key] = total
        elif key not in self._totals:
            counter.labels(*labels)  # the series exists (at 0) from the start
            self._totals[key] = 0.0
