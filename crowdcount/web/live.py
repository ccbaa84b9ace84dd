"""The live side of the dashboard: a :class:`LiveHub` observes the watcher's analysed frames (one more output of
the same record stream, never a second pipeline) and keeps what the page shows.

Per source it keeps the latest count and the day's maximum, the line and zone totals, one point per second for
the chart (the largest count of that second, crossings so far, zone occupancy) and, **only while someone watches
that camera's MJPEG stream**, a reference to the latest analysed frame with its detections: the frame is drawn
and JPEG-encoded by the stream's own request, never on the inference thread, and not at all without a viewer.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdcount.web.alerts import AlertMonitor

if TYPE_CHECKING:
    from crowdcount.live.sources import CapturedFrame
    from crowdcount.live.watcher import Watcher

logger = logging.getLogger(__name__)

_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def scrub(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it removed (for anything that reaches the page)."""
    return _CREDENTIALS.sub(r"\1", text or "")


@dataclass
class _Frame:
    """The latest analysed frame of a watched camera (kept only while a viewer is connected)."""

    seq: int
    rgb: np.ndarray
    detections: dict[str, Any]
    geometry: tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]
    header: str


@dataclass
class _SourceState:
    count: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    max_count: int = 0
    day: str = ""
    totals: dict[str, Any] = field(default_factory=dict)
    frames: int = 0
    #: one point per second: [epoch second, max count, {line: [in, out]}, {zone: occupancy}]
    series: deque[list[Any]] = field(default_factory=deque)
    viewers: int = 0
    seq: int = 0
    frame: _Frame | None = None


class LiveHub:
    """What the live page shows, fed by the watcher (:meth:`observe`) and read by the web app.

    Args:
        watcher: the running :class:`crowdcount.live.Watcher` (its sources' status, its pipelines' geometry).
        history_s: seconds of 1 s points kept per source for the chart.
        alerts: the :class:`crowdcount.web.alerts.AlertMonitor` (zone over capacity, camera stalled...).
        category: the category whose count is "the count" (default: ``Human`` when detected, else the first).
    """

    def __init__(
        self,
        watcher: Watcher,
        history_s: int = 3600,
        alerts: AlertMonitor | None = None,
        category: str | None = None,
    ) -> None:
        self.watcher = watcher
        self.history_s = int(history_s)
        self.alerts = alerts if alerts is not None else AlertMonitor()
        categories = list(watcher.categories)
        self.category = category or ("Human" if "Human" in categories else categories[0])
        self._lock = threading.Lock()
        self._states = {s.id: _SourceState() for s in watcher.sources}
        # what the page says a source is: a URL without credentials, a webcam's number, a file's name (not where
        # it lies on the server)
        self._targets = {
            s.id: Path(s.spec.target).name if s.spec.kind == "file" else scrub(s.spec.display) for s in watcher.sources
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick_loop, name="crowdcount-web-alerts", daemon=True)

    @property
    def names(self) -> list[str]:
        return list(self._states)

    # -- the watcher's side (inference thread: keep it cheap) -------------------------------------------
    def observe(self, frame: CapturedFrame, detections: dict[str, Any], totals: dict[str, Any]) -> None:
        """One analysed frame of ``frame.source`` (the :class:`crowdcount.live.watcher.FrameObserver` hook)."""
        counts = {category: len(d) for category, d in detections.items()}
        count = counts.get(self.category, 0)
        second = int(frame.captured_at)
        day = dt.date.fromtimestamp(frame.captured_at).isoformat()
        lines = {name: [c["in"], c["out"]] for name, c in totals.get("lines", {}).items()}
        zones = {name: z["occupancy"] for name, z in totals.get("zones", {}).items()}
        with self._lock:
            state = self._states[frame.source]
            state.frames += 1
            state.count = count
            state.counts = counts
            state.totals = totals
            if state.day != day:  # the day's maximum starts again at midnight (local time)
                state.day, state.max_count = day, 0
            state.max_count = max(state.max_count, count)
            series = state.series
            if series and second < series[-1][0]:  # the wall clock went back: the chart's time does not
                second = series[-1][0]
            if series and series[-1][0] == second:
                point = series[-1]
                point[1] = max(point[1], count)
                point[2] = lines
                point[3] = {name: max(n, point[3].get(name, 0)) for name, n in zones.items()}
            else:
                series.append([second, count, lines, zones])
                while series and series[0][0] <= second - self.history_s:
                    series.popleft()
            if state.viewers > 0:
                state.seq += 1
                # the page's words: "people now" (a Human count) or the category's own
                header = f"{'people' if self.category == 'Human' else self.category} now {count}"
                if "unique_people" in totals:
                    header += f"  people so far {totals['unique_people']}"
                geometry = self.watcher.pipelines.geometry(frame.source)
                state.frame = _Frame(state.seq, frame.rgb, detections, geometry, header)

    # -- the page's side --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``GET /api/status``: every source's status, counts, line and zone totals (see docs/dashboard.md)."""
        rows = {r.source: r for r in self.watcher.snapshot()}
        out = []
        with self._lock:
            for name, state in self._states.items():
                row = rows.get(name)
                totals = state.totals or (row.counting if row is not None else {})
                entry: dict[str, Any] = {
                    "name": name,
                    "target": self._targets[name],
                    "status": row.status if row is not None else "connecting",
                    "fps": row.inference_fps if row is not None else 0.0,
                    "decode_fps": row.decode_fps if row is not None else 0.0,
                    "count": state.count,
                    "counts": dict(state.counts),
                    "max_count": state.max_count,
                    "dropped": row.frames_dropped if row is not None else 0,
                    "frames_analyzed": state.frames,
                    "viewers": state.viewers,
                    "reconnects": row.reconnects if row is not None else 0,
                    "latency_ms": row.latency_ms if row is not None else None,
                    "last_error": scrub(row.last_error) if row is not None else "",
                    "lines": {k: dict(v) for k, v in totals.get("lines", {}).items()},
                    "zones": {k: dict(v) for k, v in totals.get("zones", {}).items()},
                }
                if "unique_people" in totals:
                    entry["unique_people"] = totals["unique_people"]
                if state.series:  # the chart's newest point (the page appends it, or replaces its last one)
                    t, peak, _, zones = state.series[-1]
                    entry["point"] = {"t": t, "count": peak, "zones": dict(zones)}
                out.append(entry)
        return {"category": self.category, "sources": out, "alerts": self.alerts.active()}

    def series(self, source: str, seconds: float) -> dict[str, Any]:
        """``GET /api/series``: the 1 s points of the last ``seconds`` of ``source`` (KeyError: no such source)."""
        state = self._states[source]
        with self._lock:
            points = list(state.series)
        if points:
            start = points[-1][0] - float(seconds)
            points = [p for p in points if p[0] > start]
        lines = sorted({name for p in points for name in p[2]})
        zones = sorted({name for p in points for name in p[3]})
        return {
            "source": source,
            "t": [p[0] for p in points],
            "count": [p[1] for p in points],
            "lines": {
                n: {"in": [p[2].get(n, [0, 0])[0] for p in points], "out": [p[2].get(n, [0, 0])[1] for p in points]}
                for n in lines
            },
            "zones": {n: [p[3].get(n, 0) for p in points] for n in zones},
        }

    # -- viewers of the MJPEG stream ----------------------------------------------------------------------
    def add_viewer(self, source: str) -> None:
        with self._lock:
            self._states[source].viewers += 1

    def remove_viewer(self, source: str) -> None:
        with self._lock:
            state = self._states[source]
            state.viewers = max(0, state.viewers - 1)
            if state.viewers == 0:
                state.frame = None  # nobody watches: drop the reference, draw nothing

    def viewers(self, source: str) -> int:
        return self._states[source].viewers

    def latest_frame(self, source: str, after: int) -> _Frame | None:
        """The latest analysed frame of ``source`` newer than sequence number ``after`` (or None)."""
        with self._lock:
            frame = self._states[source].frame
        return frame if frame is not None and frame.seq > after else None

    # -- alerts: evaluated twice a second, whether a page is open or not ----------------------------------
    def start(self) -> LiveHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.alerts.close()

    def tick(self) -> None:
        """Evaluate the alert rules against the current status once."""
        self.alerts.update(self.status()["sources"])

    def _tick_loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.tick()
            except Exception:  # the alerts must not stop the dashboard
                logger.exception("evaluating alerts failed")
