"""Line and zone counting over tracked people: a frame processor that runs after :mod:`.tracking`.

A person's position is the bottom-centre of their box (their feet), so a line drawn on the floor counts people
who walk over it, whatever their height in the image.

- **Lines** ``[NAME=]x1,y1,x2,y2`` count crossings by direction: *in* is from the left of the line, as seen
  walking from (x1, y1) to (x2, y2), to its right (a horizontal line drawn left to right counts people walking
  down the image as *in*). Hysteresis: a person changes side only once their feet are further from the line
  than ``hysteresis`` times their box height, so someone standing on the line is counted once, not at every
  jitter of their box. Crossings beyond the ends of the segment do not count.
- **Zones** ``[NAME=]x1,y1,x2,y2,x3,y3,...`` are polygons: occupancy per analysed frame (people whose feet are
  inside), visitors, and each person's dwell time (the sum of their visits, from the first to the last frame seen
  inside, plus one analysed frame; a visit ends when they are seen outside).

Coordinates are pixels of the video, or fractions of its width and height when every value is at most 1
(``0.5,0,0.5,1``: a vertical line through the middle). Only boxes of confirmed tracks count.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdcount.analyzer.processors import FORGET_AFTER_S, FORGET_EVERY_S, FrameProcessor
from crowdcount.analyzer.tracking import NO_TRACK, TRACK_ID, TrackingProcessor
from crowdcount.config import TrackingConfig, check_setting
from crowdcount.errors import ConfigError

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.video import VideoInfo

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
LINE_SYNTAX = "[NAME=]x1,y1,x2,y2 (pixels, or fractions of the frame when all are <= 1)"
ZONE_SYNTAX = "[NAME=]x1,y1,x2,y2,x3,y3,... (pixels, or fractions of the frame when all are <= 1)"


def _parse(text: str, option: str, syntax: str, default_name: str) -> tuple[str, list[tuple[float, float]], bool]:
    if not isinstance(text, str):
        raise ConfigError(f"{option} {text!r} is not text", f"expected {syntax}")
    name, sep, coords = text.strip().rpartition("=")
    name = name.strip() if sep else default_name
    if not _NAME.match(name):
        raise ConfigError(f"{option} {text!r}: name {name!r} may hold only letters, digits, '_', '-' and '.'")
    values: list[float] = []
    for part in coords.split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise ConfigError(f"{option} {text!r}: {part.strip()!r} is not a number", f"expected {syntax}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{option} {text!r}: {part.strip()!r} is not a finite number", f"expected {syntax}")
        values.append(value)
    if len(values) % 2:
        raise ConfigError(f"{option} {text!r}: {len(values)} numbers do not make x,y points", f"expected {syntax}")
    if any(v < 0 for v in values):
        raise ConfigError(f"{option} {text!r}: negative coordinates lie outside the frame", f"expected {syntax}")
    points = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
    return name, points, all(v <= 1 for v in values)


def _area(points: list[tuple[float, float]]) -> float:
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    return 0.5 * float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))


Point = tuple[float, float]


def _segments_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether segments p1-p2 and q1-q2 intersect (touching counts)."""

    def orient(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    def on(a: Point, b: Point, c: Point) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and on(q1, q2, p1))
        or (d2 == 0 and on(q1, q2, p2))
        or (d3 == 0 and on(p1, p2, q1))
        or (d4 == 0 and on(p1, p2, q2))
    )


@dataclass(frozen=True)
class _Shape:
    """Points in pixels, or fractions of the frame when ``relative``, as given by ``text`` on ``option``."""

    name: str
    points: tuple[tuple[float, float], ...]
    relative: bool
    text: str
    option: str

    def in_pixels(self, width: int, height: int) -> np.ndarray:
        """The points in pixels of a ``width`` x ``height`` frame; :class:`ConfigError` when outside it."""
        xy = np.array(self.points, np.float64) * (np.array([width, height], np.float64) if self.relative else 1.0)
        for x, y in xy:
            if x > width or y > height:
                raise ConfigError(
                    f"{self.option} {self.text!r}: point ({x:g}, {y:g}) lies outside the {width}x{height} frame",
                    "give pixels inside the frame, or fractions (all values <= 1)",
                )
        return xy


@dataclass(frozen=True)
class Line(_Shape):
    """A counting line: ``points`` are pixels, or fractions of the frame when ``relative``."""

    option: str = "--line"

    @classmethod
    def parse(cls, text: str, option: str = "--line", default_name: str = "line") -> Line:
        """Parse ``[NAME=]x1,y1,x2,y2``; :class:`ConfigError` naming ``option`` when malformed or degenerate."""
        name, points, relative = _parse(text, option, LINE_SYNTAX, default_name)
        if len(points) != 2:
            raise ConfigError(f"{option} {text!r}: a line needs 2 points (4 numbers), got {len(points)}", LINE_SYNTAX)
        if points[0] == points[1]:
            raise ConfigError(f"{option} {text!r}: the two points are the same (a line needs a length)")
        return cls(name, tuple(points), relative, text, option)


@dataclass(frozen=True)
class Zone(_Shape):
    """A counting zone (a simple polygon): ``points`` are pixels, or fractions of the frame when ``relative``."""

    option: str = "--zone"

    @classmethod
    def parse(cls, text: str, option: str = "--zone", default_name: str = "zone") -> Zone:
        """Parse ``[NAME=]x1,y1,x2,y2,x3,y3,...``; :class:`ConfigError` naming ``option`` when malformed or the
        polygon is degenerate (fewer than 3 points, zero area, edges that cross)."""
        name, points, relative = _parse(text, option, ZONE_SYNTAX, default_name)
        distinct = [p for i, p in enumerate(points) if p != points[i - 1]] if len(points) > 1 else points
        if len(distinct) < 3:
            raise ConfigError(
                f"{option} {text!r}: a zone needs at least 3 distinct points, got {len(distinct)}", ZONE_SYNTAX
            )
        n = len(distinct)
        for i in range(n):
            for j in range(i + 1, n):
                if j == i + 1 or (i == 0 and j == n - 1):
                    continue  # neighbouring edges share a corner
                a, b = distinct[i], distinct[(i + 1) % n]
                c, d = distinct[j], distinct[(j + 1) % n]
                if _segments_cross(a, b, c, d):
                    raise ConfigError(
                        f"{option} {text!r}: the polygon's edges cross (edge {i + 1} and edge {j + 1})",
                        "list the corners in order around the zone",
                    )
        xs, ys = [p[0] for p in distinct], [p[1] for p in distinct]
        if abs(_area(distinct)) <= 1e-9 * max((max(xs) - min(xs)) * (max(ys) - min(ys)), 1e-12):
            raise ConfigError(f"{option} {text!r}: the polygon has zero area (its points are in a line)")
        return cls(name, tuple(distinct), relative, text, option)


def parse_lines(texts: list[str] | tuple[str, ...], option: str = "--line") -> list[Line]:
    """Parse many lines, naming unnamed ones ``line1``, ``line2``...; names must be unique."""
    lines = [Line.parse(t, option, f"line{i + 1}") for i, t in enumerate(texts)]
    _unique([line.name for line in lines], option)
    return lines


def parse_zones(texts: list[str] | tuple[str, ...], option: str = "--zone") -> list[Zone]:
    """Parse many zones, naming unnamed ones ``zone1``, ``zone2``...; names must be unique."""
    zones = [Zone.parse(t, option, f"zone{i + 1}") for i, t in enumerate(texts)]
    _unique([zone.name for zone in zones], option)
    return zones


def _unique(names: list[str], option: str) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{option}: the name {repeated[0]!r} is given twice", "name each one differently")


def feet(xyxy: np.ndarray) -> np.ndarray:
    """Bottom-centre points ``(N, 2)`` of boxes ``(N, 4)``."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1)


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which ``points`` ``(N, 2)`` lie inside ``polygon`` ``(M, 2)`` (even-odd rule)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return np.logical_xor.reduce(straddles & (x < cross_x), axis=1)


@dataclass
class _LineState:
    line: Line
    a: np.ndarray = field(default_factory=lambda: np.zeros(2))
    b: np.ndarray = field(default_factory=lambda: np.zeros(2))
    sides: dict[int, int] = field(default_factory=dict)
    crossings: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})
    series: dict[str, list[int]] = field(default_factory=lambda: {"in": [], "out": []})


@dataclass
class _ZoneState:
    zone: Zone
    polygon: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    occupancy: list[int] = field(default_factory=list)
    open_visits: dict[int, list[float]] = field(default_factory=dict)
    visits: dict[int, list[list[float]]] = field(default_factory=dict)
    #: live: visitors forgotten (their ids no longer kept)
    past_visitors: int = 0


class CountingProcessor(FrameProcessor):
    """Counts tracked people crossing lines and staying in zones (see the module docstring).

    Args:
        lines: counting lines; zones: counting zones (at least one of either).
        category: the tracked category (its boxes need ``data["track_id"]``: run after the tracker).
        hysteresis: half-width of the band around a line, as a share of the person's box height, inside which
            their side does not change.
        tracking: the tracker whose ids the boxes carry: the result file's crossings and zone visitors are given
            the ids the tracker settles on when the video ends (its merge pass), as its ``people`` are.
    """

    name = "counting"

    def __init__(
        self,
        lines: Sequence[Line] = (),
        zones: Sequence[Zone] = (),
        category: str = "Human",
        hysteresis: float = 0.1,
        tracking: TrackingProcessor | None = None,
    ) -> None:
        hysteresis = check_setting(TrackingConfig, "line_hysteresis", hysteresis)
        self.lines = list(lines)
        self.zones = list(zones)
        _unique([x.name for x in [*self.lines, *self.zones]], "--line/--zone")
        self.category = category
        self.hysteresis = float(hysteresis)
        self.tracking = tracking
        self._lines: list[_LineState] = []
        self._zones: list[_ZoneState] = []
        self._interval_s = 0.0
        self._frames: list[int] = []
        self._last_seen: dict[int, float] = {}  # live: track id -> when last seen (s)
        self._swept_s = -1e18

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "lines": [line.text for line in self.lines],
            "zones": [zone.text for zone in self.zones],
            "line_hysteresis": self.hysteresis,
        }

    def check(self, width: int, height: int) -> None:
        """Raise :class:`ConfigError` when a line or zone lies outside a ``width`` x ``height`` frame."""
        for item in [*self.lines, *self.zones]:
            item.in_pixels(width, height)

    def start(self, video: VideoInfo, frame_ratio: float) -> None:
        self._lines = []
        for line in self.lines:
            a, b = line.in_pixels(video.width, video.height)
            self._lines.append(_LineState(line, a, b))
        self._zones = [_ZoneState(z, z.in_pixels(video.width, video.height)) for z in self.zones]
        fps = video.fps if video.fps > 0 else 25.0
        self._interval_s = 1.0 / (fps * frame_ratio)
        self._frames = []
        self._last_seen = {}
        self._swept_s = -1e18

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        dets = frame.detections.get(self.category)
        if dets is None or TRACK_ID not in dets.data:
            raise ConfigError("line and zone counting needs tracking", "turn tracking on (tracking.enabled)")
        ids = np.asarray(dets.data[TRACK_ID], np.int64)
        tracked = ids != NO_TRACK
        ids = ids[tracked]
        xyxy = dets.xyxy[tracked]
        points = feet(xyxy)
        heights = (xyxy[:, 3] - xyxy[:, 1]).astype(np.float64)
        t = frame.timestamp_ms / 1000.0
        if not self.live:
            self._frames.append(frame.index)
        for state in self._lines:
            self._cross(state, ids, points, heights, frame.index, t)
        for zone in self._zones:
            self._dwell(zone, ids, points, t)
        if self.live:
            self._last_seen.update(dict.fromkeys(ids.tolist(), t))
            if t - self._swept_s >= FORGET_EVERY_S:
                self._forget(t)
                self._swept_s = t

    def _forget(self, t: float) -> None:
        """Live: forget the people not seen for ``FORGET_AFTER_S`` (their line sides, their closed zone visits,
        counted in ``past_visitors``)."""
        gone = {track_id for track_id, seen in self._last_seen.items() if t - seen > FORGET_AFTER_S}
        if not gone:
            return
        for track_id in gone:
            del self._last_seen[track_id]
        for state in self._lines:
            for track_id in gone:
                state.sides.pop(track_id, None)
        for zone in self._zones:
            for track_id in gone:
                if zone.visits.pop(track_id, None) is not None and track_id not in zone.open_visits:
                    zone.past_visitors += 1

    def _cross(
        self, state: _LineState, ids: np.ndarray, points: np.ndarray, heights: np.ndarray, index: int, t: float
    ) -> None:
        ab = state.b - state.a
        length = float(np.hypot(*ab))
        rel = points - state.a
        distance = (ab[0] * rel[:, 1] - ab[1] * rel[:, 0]) / length  # > 0: right of a->b (y points down)
        along = (rel @ ab) / (length * length)
        band = np.maximum(self.hysteresis * heights, 1.0)
        for track_id, d, s, margin in zip(ids.tolist(), distance, along, band, strict=True):
            if abs(d) <= margin:
                continue  # on the line: keep the side it had
            side = 1 if d > 0 else -1
            before = state.sides.get(track_id)
            state.sides[track_id] = side
            if before is None or before == side or not -margin / length <= s <= 1 + margin / length:
                continue
            direction = "in" if side > 0 else "out"
            state.counts[direction] += 1
            if not self.live:
                state.crossings.append(
                    {"track_id": track_id, "direction": direction, "frame_index": index, "time_s": round(t, 3)}
                )
        if not self.live:
            state.series["in"].append(state.counts["in"])
            state.series["out"].append(state.counts["out"])

    def _dwell(self, zone: _ZoneState, ids: np.ndarray, points: np.ndarray, t: float) -> None:
        inside = inside_polygon(points, zone.polygon) if len(points) else np.zeros(0, bool)
        if self.live:
            zone.occupancy[:] = [int(inside.sum())]
        else:
            zone.occupancy.append(int(inside.sum()))
        for track_id, is_in in zip(ids.tolist(), inside.tolist(), strict=True):
            visit = zone.open_visits.get(track_id)
            if is_in:
                if visit is None:
                    zone.open_visits[track_id] = [t, t]
                else:
                    visit[1] = t
            elif visit is not None:
                zone.visits.setdefault(track_id, []).append(zone.open_visits.pop(track_id))

    def current(self) -> dict[str, Any]:
        """Counts so far: ``{"lines": {name: (in, out)}, "zones": {name: occupancy now}}``."""
        return {
            "lines": {s.line.name: (s.counts["in"], s.counts["out"]) for s in self._lines},
            "zones": {z.zone.name: (z.occupancy[-1] if z.occupancy else 0) for z in self._zones},
        }

    def totals(self) -> dict[str, Any]:
        """Totals so far, for live records: ``{"lines": {name: {"in": N, "out": M}}, "zones": {name:
        {"occupancy": people now, "visitors": people seen inside so far}}}`` (equal to :meth:`finish`'s at the end)."""
        return {
            "lines": {s.line.name: dict(s.counts) for s in self._lines},
            "zones": {
                z.zone.name: {
                    "occupancy": z.occupancy[-1] if z.occupancy else 0,
                    "visitors": z.past_visitors + len(set(z.visits) | set(z.open_visits)),
                }
                for z in self._zones
            },
        }

    def pixel_geometry(self) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
        """The lines and zones of the current video, in pixels."""
        return [(s.line.name, np.stack([s.a, s.b])) for s in self._lines], [
            (z.zone.name, z.polygon) for z in self._zones
        ]

    def _final_id(self, track_id: int) -> int:
        return self.tracking.final_id(track_id) if self.tracking is not None else track_id

    def _final_visits(self, zone: _ZoneState) -> dict[int, list[list[float]]]:
        """The zone's visits by the result file's ids: the visits of one person under two online ids (before and
        after a re-link) joined, touching ones (no analysed frame between them) as one."""
        for track_id, visit in zone.open_visits.items():
            zone.visits.setdefault(track_id, []).append(visit)
        zone.open_visits = {}
        people: dict[int, list[list[float]]] = {}
        for track_id, visits in zone.visits.items():
            people.setdefault(self._final_id(track_id), []).extend(list(v) for v in visits)
        for visits in people.values():
            visits.sort()
            joined = [visits[0]]
            for first, last in visits[1:]:
                if first <= joined[-1][1] + 1.5 * self._interval_s:
                    joined[-1][1] = max(joined[-1][1], last)
                else:
                    joined.append([first, last])
            visits[:] = joined
        return people

    def finish(self) -> dict[str, Any]:
        lines = []
        per_frame: dict[str, list[int]] = {}
        for state in self._lines:
            for crossing in state.crossings:
                crossing["track_id"] = self._final_id(crossing["track_id"])
            lines.append(
                {
                    "name": state.line.name,
                    "points": np.round(np.stack([state.a, state.b]), 1).tolist(),
                    "in": state.counts["in"],
                    "out": state.counts["out"],
                    "crossings": state.crossings,
                }
            )
            per_frame[f"{state.line.name}:in"] = state.series["in"]
            per_frame[f"{state.line.name}:out"] = state.series["out"]
        zones = []
        for zone in self._zones:
            people = []
            for track_id, visits in sorted(self._final_visits(zone).items()):
                dwell = sum(last - first + self._interval_s for first, last in visits)
                people.append(
                    {
                        "track_id": track_id,
                        "first_s": round(visits[0][0], 3),
                        "last_s": round(visits[-1][1], 3),
                        "visits": len(visits),
                        "dwell_s": round(dwell, 3),
                    }
                )
            occupancy = np.asarray(zone.occupancy, np.int64)
            dwells = [p["dwell_s"] for p in people]
            peak = int(np.argmax(occupancy)) if len(occupancy) and occupancy.max() > 0 else None
            zones.append(
                {
                    "name": zone.zone.name,
                    "points": np.round(zone.polygon, 1).tolist(),
                    "visitors": len(people),
                    "max_occupancy": int(occupancy.max()) if len(occupancy) else 0,
                    "mean_occupancy": round(float(occupancy.mean()), 3) if len(occupancy) else 0.0,
                    "peak_frame_index": None if peak is None else self._frames[peak],
                    "mean_dwell_s": round(float(np.mean(dwells)), 3) if dwells else 0.0,
                    "max_dwell_s": round(float(np.max(dwells)), 3) if dwells else 0.0,
                    "people": people,
                }
            )
            per_frame[f"zone:{zone.zone.name}"] = zone.occupancy
        return {"lines": lines, "zones": zones, "per_frame": per_frame}
