"""Close contacts: pairs of tracked people standing closer than a distance for longer than a time, measured on
the ground through a calibration (a homography from image pixels to metres).

A calibration file is JSON: ``{"image": [[x, y], ...], "ground": [[X, Y], ...]}``: four or more points of the
ground plane as seen in the video (pixels, or fractions of the frame when every value is at most 1) and the
same points in metres on the ground. A person's position is their feet (the bottom-centre of their box) mapped
through the homography. Without a calibration there are no contacts: distances in pixels mean nothing across a
perspective view, so nothing is guessed.

:class:`ContactsProcessor` runs after the tracker and reads the people's final ids when the video ends (after
the tracker's merge pass): a contact is one pair's stretch of analysed frames in which both are seen within
``distance_m`` of each other (a stretch survives frames where one of them is not seen, up to ``GAP_S``),
reported when it lasts at least ``min_seconds``.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.analyzer.tracking import NO_TRACK, TRACK_ID
from crowdcount.config import TrackingConfig, check_setting
from crowdcount.errors import ConfigError

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.video import VideoInfo

logger = logging.getLogger(__name__)

#: A contact survives this many seconds in which one of the two is not seen (a missed detection).
GAP_S = 1.0


def _collinear(points: np.ndarray, tolerance: float = 1e-3) -> bool:
    """All points (nearly) on one line: the smaller spread is a tiny share of the larger one."""
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return bool(singular[0] <= 0 or singular[-1] / singular[0] < tolerance)


@dataclass(frozen=True)
class Calibration:
    """Image points (pixels, or fractions of the frame) and their ground points (metres)."""

    image: np.ndarray
    ground: np.ndarray
    source: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read and check a calibration file (:class:`ConfigError` naming what is wrong)."""
        where = f"calibration {str(path)!r}"
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where} does not exist", "give a JSON file with image and ground points") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{where} is not readable JSON: {exc}") from None
        if not isinstance(data, dict) or "image" not in data or "ground" not in data:
            raise ConfigError(
                f"{where} must be an object with 'image' and 'ground' point lists",
                'e.g. {"image": [[x, y], ...], "ground": [[X, Y], ...]} (pixels; metres)',
            )
        try:
            image = np.asarray(data["image"], np.float64)
            ground = np.asarray(data["ground"], np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: points must be [x, y] pairs of numbers") from None
        return cls.from_points(image, ground, str(path))

    @classmethod
    def from_points(cls, image: Any, ground: Any, source: str = "") -> Calibration:
        """A checked calibration: at least 4 point pairs, finite, not all on one line, a usable homography."""
        where = f"calibration {source!r}" if source else "calibration"
        image = np.asarray(image, np.float64)
        ground = np.asarray(ground, np.float64)
        if image.ndim != 2 or image.shape[1:] != (2,) or ground.ndim != 2 or ground.shape[1:] != (2,):
            raise ConfigError(f"{where}: points must be [x, y] pairs")
        if len(image) != len(ground):
            raise ConfigError(f"{where}: {len(image)} image points but {len(ground)} ground points")
        if len(image) < 4:
            raise ConfigError(
                f"{where} has {len(image)} point pairs; a ground homography needs at least 4",
                "mark four or more points on the ground, not three of them on one line",
            )
        if not (np.all(np.isfinite(image)) and np.all(np.isfinite(ground))):
            raise ConfigError(f"{where}: points must be finite numbers")
        for name, points in (("image", image), ("ground", ground)):
            if _collinear(points) or (len(points) == 4 and any(_collinear(points[list(t)]) for t in
                                                               itertools.combinations(range(4), 3))):  # fmt: skip
                raise ConfigError(
                    f"{where}: the {name} points are collinear (three or more on one line)",
                    "mark points spread over the ground, e.g. the corners of a rectangle",
                )
        return cls(image, ground, source)

    def homography(self, width: int, height: int) -> np.ndarray:
        """The 3x3 homography from pixels of a ``width x height`` frame to metres."""
        import cv2

        image = self.image * [width, height] if np.all(np.abs(self.image) <= 1) else self.image
        matrix, _ = cv2.findHomography(image.astype(np.float64), self.ground.astype(np.float64), 0)
        if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
            raise ConfigError(f"calibration {self.source!r}: no homography fits these points", "check the pairs")
        return matrix

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "image": self.image.tolist(), "ground": self.ground.tolist()}


def to_ground(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` pixels -> ``(N, 2)`` metres through a homography."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(points):
        return points
    ones = np.ones((len(points), 1))
    mapped = np.hstack([points, ones]) @ matrix.T
    return mapped[:, :2] / mapped[:, 2:3]


class ContactsProcessor(FrameProcessor):
    """Finds close contacts between tracked people (needs the tracker before it and a calibration).

    Args:
        calibration: the ground calibration.
        distance_m: people closer than this (metres, feet to feet) are in contact.
        min_seconds: a contact is reported when it lasts at least this long.
        category: the tracked category.
    """

    name = "contacts"

    def __init__(
        self, calibration: Calibration, distance_m: float = 1.5, min_seconds: float = 2.0, category: str = "Human"
    ) -> None:
        distance_m = check_setting(TrackingConfig, "contact_distance", distance_m)
        min_seconds = check_setting(TrackingConfig, "contact_seconds", min_seconds)
        self.calibration = calibration
        self.distance_m = float(distance_m)
        self.min_seconds = float(min_seconds)
        self.category = category
        self._frames: list[FrameResult] = []
        self._matrix = np.eye(3)
        self._interval_s = 0.0

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distance_m": self.distance_m,
            "min_seconds": self.min_seconds,
            "calibration": self.calibration.describe(),
        }

    def start(self, video: VideoInfo, frame_ratio: float) -> None:
        self._matrix = self.calibration.homography(video.width, video.height)
        fps = video.fps if video.fps > 0 else 25.0
        self._interval_s = 1.0 / (fps * frame_ratio)
        self._frames = []

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        if not self.live:  # contacts are a result-file section: live sources keep nothing for them
            self._frames.append(frame)  # the ids are read at the end, after the tracker's merge pass

    def finish(self) -> dict[str, Any]:
        # (a, b) -> [first close ms, last close ms, last seen together ms, min distance, first frame, last frame]
        open_: dict[tuple[int, int], list[float]] = {}
        contacts: list[dict[str, Any]] = []
        gap_ms = GAP_S * 1000.0

        def close(pair: tuple[int, int], state: list[float]) -> None:
            duration = (state[1] - state[0]) / 1000.0 + self._interval_s
            if duration >= self.min_seconds - 1e-9:
                contacts.append(
                    {
                        "people": list(pair),
                        "start_s": round(state[0] / 1000.0, 3),
                        "end_s": round(state[1] / 1000.0, 3),
                        "duration_s": round(duration, 3),
                        "min_distance_m": round(state[3], 3),
                        "first_frame": int(state[4]),
                        "last_frame": int(state[5]),
                    }
                )

        for frame in self._frames:
            dets = frame.detections.get(self.category)
            if dets is None or TRACK_ID not in dets.data:
                continue
            ids = np.asarray(dets.data[TRACK_ID], np.int64)
            keep = ids != NO_TRACK
            ids = ids[keep]
            boxes = dets.xyxy[keep]
            feet = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1) if len(boxes) else np.zeros((0, 2))
            ground = to_ground(self._matrix, feet)
            now = frame.timestamp_ms
            seen = set(ids.tolist())
            near: dict[tuple[int, int], float] = {}
            for i, j in itertools.combinations(range(len(ids)), 2):
                distance = float(np.linalg.norm(ground[i] - ground[j]))
                if distance < self.distance_m and ids[i] != ids[j]:
                    pair = (int(min(ids[i], ids[j])), int(max(ids[i], ids[j])))
                    near[pair] = min(distance, near.get(pair, np.inf))
            for pair, state in list(open_.items()):
                both = pair[0] in seen and pair[1] in seen
                if pair not in near and (both or now - state[2] > gap_ms):
                    close(pair, open_.pop(pair))
            for pair, distance in near.items():
                current = open_.get(pair)
                if current is None:
                    open_[pair] = [now, now, now, distance, frame.index, frame.index]
                else:
                    current[1] = current[2] = now
                    current[3] = min(current[3], distance)
                    current[5] = frame.index
        for pair, state in open_.items():
            close(pair, state)
        contacts.sort(key=lambda c: (c["start_s"], c["people"]))
        self._frames = []
        return {
            "distance_m": self.distance_m,
            "min_seconds": self.min_seconds,
            "count": len(contacts),
            "people_in_contact": len({p for c in contacts for p in c["people"]}),
            "contacts": contacts,
        }
