"""Where live results go: JSON lines (stdout or a file), per frame or aggregated per interval.

A sink is anything with ``write(record: dict)`` and ``close()``; the broker sinks (Redis Streams, Kafka)
are in :mod:`crowdcount.live.brokers`. One record per analysed frame::

    {"source": "cam1", "frame_index": 42, "time": "2026-01-01T12:00:00.123Z", "timestamp": 1767268800.123,
     "latency_ms": 48.1, "width": 480, "height": 360, "counts": {"Human": 3},
     "Human": {"classes": [1, 1, 1], "boxes": [[ymin, xmin, ymax, xmax], ...], "scores": [0.9, ...]}}

or, with an interval, one record per source and interval (also when nothing was analysed in it)::

    {"source": "cam1", "start": "...Z", "end": "...Z", "interval_s": 1.0, "frames_analyzed": 9,
     "frames_dropped": 16, "latency_ms_max": 61.0, "status": "streaming",
     "counts": {"Human": {"last": 3, "max": 4, "mean": 3.2}}}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from crowdcount.analyzer.result import plain_values
from crowdcount.detectors import Detections


class Sink(Protocol):
    """A destination of result records."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def iso_time(epoch: float) -> str:
    """``2026-01-01T12:00:00.123Z`` (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def frame_record(
    source: str,
    frame_index: int,
    captured_at: float,
    latency_s: float,
    size: tuple[int, int],
    detections: dict[str, Detections],
    boxes: bool = True,
    fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The record of one analysed frame (boxes as in the result file: normalised ``[ymin, xmin, ymax, xmax]``),
    with the per-box ``fields`` the processors added (``Detections.data`` key -> name: ``track_ids``, face
    ``identities``...) as a result file has them."""
    width, height = size
    record: dict[str, Any] = {
        "source": source,
        "frame_index": frame_index,
        "time": iso_time(captured_at),
        "timestamp": round(captured_at, 3),
        "latency_ms": round(latency_s * 1000.0, 1),
        "width": width,
        "height": height,
        "counts": {category: len(d) for category, d in detections.items()},
    }
    if boxes:
        for category, d in detections.items():
            record[category] = {
                "classes": d.class_id.tolist(),
                "boxes": np.round(d.normalized_yxyx(width, height).astype(np.float64), 5).tolist(),
                "scores": np.round(d.confidence.astype(np.float64), 5).tolist(),
            }
            for key, name in (fields or {}).items():
                if key in d.data:
                    record[category][name] = plain_values(d.data[key])
    return record


class JsonLinesSink:
    """One JSON object per line to a stream or a file (``"-"``: stdout), flushed per line."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        self._lock = threading.Lock()
        if target == "-":
            self._fh: IO[str] = sys.stdout
            self._owned = False
        elif isinstance(target, (str, Path)):
            path = Path(target)
            if path.parent and not path.parent.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
            self._owned = True
        else:
            self._fh = target
            self._owned = False

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._owned:
                self._fh.close()
            else:
                self._fh.flush()


class IntervalAggregator:
    """Aggregates frame results per source into one record per ``interval_s`` (see the module docstring)."""

    def __init__(self, interval_s: float, sources: list[str], categories: list[str], now: float | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval must be > 0, got {interval_s!r}")
        self.interval_s = interval_s
        self.categories = categories
        self._wall0, self._mono0 = time.time(), time.monotonic()
        self._start_wall = self._now() if now is None else now
        self._start = {s: self._start_wall for s in sources}
        self._acc: dict[str, dict[str, Any]] = {s: self._empty() for s in sources}

    def _now(self) -> float:
        """Epoch seconds that never go back: the wall clock at the start plus the monotonic clock since (a wall
        clock set back would hold the intervals back, or end one before it began)."""
        return self._wall0 + (time.monotonic() - self._mono0)

    def reset(self, now: float | None = None) -> None:
        """Start every source's first interval now (when the watching starts, after the models loaded)."""
        now = self._now() if now is None else now
        self._start = dict.fromkeys(self._start, now)

    def _empty(self) -> dict[str, Any]:
        return {"frames": 0, "latency_max": 0.0, "counts": {c: [] for c in self.categories}}

    def add(self, source: str, latency_s: float, counts: dict[str, int]) -> None:
        acc = self._acc.setdefault(source, self._empty())
        acc["frames"] += 1
        acc["latency_max"] = max(acc["latency_max"], latency_s)
        for category, n in counts.items():
            acc["counts"].setdefault(category, []).append(n)

    def due(self, now: float | None = None) -> bool:
        now = self._now() if now is None else now
        return any(now - start >= self.interval_s for start in self._start.values())

    def flush(
        self, dropped: dict[str, int], status: dict[str, str], now: float | None = None, force: bool = False
    ) -> list[dict[str, Any]]:
        """Records of every source whose interval is over (all of them with ``force``); ``dropped`` is each
        source's total dropped frames so far (the record carries the interval's share)."""
        now = self._now() if now is None else now
        out = []
        for source, start in list(self._start.items()):
            if not force and now - start < self.interval_s:
                continue
            acc = self._acc[source]
            end = now if force else start + self.interval_s * max(1, int((now - start) // self.interval_s))
            counts = {}
            for category, values in acc["counts"].items():
                counts[category] = (
                    {"last": values[-1], "max": max(values), "mean": round(sum(values) / len(values), 3)}
                    if values
                    else None
                )
            total_dropped = dropped.get(source, 0)
            record = {
                "source": source,
                "start": iso_time(start),
                "end": iso_time(end),
                "interval_s": round(end - start, 3),
                "frames_analyzed": acc["frames"],
                "frames_dropped": total_dropped - acc.get("dropped_before", 0),
                "latency_ms_max": round(acc["latency_max"] * 1000.0, 1) if acc["frames"] else None,
                "status": status.get(source, ""),
                "counts": counts,
            }
            out.append(record)
            self._start[source] = end
            self._acc[source] = {**self._empty(), "dropped_before": total_dropped}
        return out
