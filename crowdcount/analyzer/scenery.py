"""Scenery suppression for fixed cameras: a weak box that has not moved for a while and whose pixels match the
long-term background is a thing (a traffic cone, a bollard, a post), not a person.

A person detector scores some static objects just above its threshold, and keeps doing so for minutes: every
such box adds one to every frame's count. Two checks, both needed, decide that a box is scenery:

1. **It has not moved.** The box overlaps (IoU >= ``static_iou``) boxes at the same place for at least
   ``static_s`` seconds of the video.
2. **It looks like the background.** Under the box, few pixels (< ``max_foreground``) differ from a slowly
   learnt background image (an exponential running mean with a time constant of ``background_s`` seconds).

A box scoring at least ``keep_score`` is never suppressed (a person standing still is usually detected
confidently), and nothing is suppressed while the camera moves (the whole image shifts from one frame to the
next, or most of it differs from the background) or before the background has seen ``static_s`` seconds.
Suppressed boxes are marked like boxes under the detector's threshold (the tracker may still use them as weak
evidence); the analyzer removes them from the result, so counts never include them. The result file's
``scenery`` section lists the static places found and how many boxes each suppressed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdcount.analyzer.processors import BELOW_THRESHOLD, FrameProcessor
from crowdcount.detectors import Detections
from crowdcount.detectors.base import iou_matrix

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.video import VideoInfo

logger = logging.getLogger(__name__)

#: Background images are kept at this width (pixels); enough to tell a cone from a coat.
WORK_WIDTH = 320
#: A pixel differing from the background by more than this (0-255 grey levels) is foreground.
PIXEL_DIFF = 25.0
#: The view is taken to have changed when more than this share of the frame is foreground (a cut, lights)...
CHANGED_VIEW = 0.5
#: ...or when the whole image shifted by more than this (pixels at ``WORK_WIDTH``) since the last frame.
CAMERA_SHIFT = 1.0


@dataclass
class StaticPlace:
    """A place where boxes keep appearing without moving."""

    box: np.ndarray
    first_s: float
    last_s: float
    suppressed: int = 0

    @property
    def age_s(self) -> float:
        return self.last_s - self.first_s


class SceneryModel:
    """The state behind :class:`SceneryFilter` for one video (frames in order, timestamps in seconds)."""

    def __init__(
        self,
        keep_score: float = 0.5,
        static_s: float = 5.0,
        static_iou: float = 0.7,
        max_foreground: float = 0.25,
        background_s: float = 20.0,
        forget_s: float = 2.0,
    ) -> None:
        self.keep_score = keep_score
        self.static_s = static_s
        self.static_iou = static_iou
        self.max_foreground = max_foreground
        self.background_s = background_s
        self.forget_s = forget_s
        self.places: list[StaticPlace] = []
        self.background: np.ndarray | None = None
        self.scale = 1.0
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.moving_frames = 0
        self.previous: np.ndarray | None = None

    def _grey(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        height, width = rgb.shape[:2]
        self.scale = min(1.0, WORK_WIDTH / width)
        small = rgb if self.scale == 1.0 else cv2.resize(rgb, (round(width * self.scale), round(height * self.scale)),
                                                          interpolation=cv2.INTER_AREA)  # fmt: skip
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.asarray(cv2.GaussianBlur(grey, (3, 3), 0))

    def update(self, rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray, t_s: float) -> np.ndarray:
        """Boolean mask of the boxes (xyxy pixels) that are scenery in this frame."""
        grey = self._grey(rgb)
        suppress = np.zeros(len(scores), bool)
        if self.background is None or self.background.shape != grey.shape:
            self.background = grey.copy()
            self.first_s = t_s
        dt = t_s - self.last_s if self.last_s is not None else 0.0
        self.last_s = t_s
        foreground = np.abs(grey - self.background) > PIXEL_DIFF
        moving = float(foreground.mean()) > CHANGED_VIEW or self._camera_shift(grey) > CAMERA_SHIFT
        self.previous = grey
        if moving:
            self.moving_frames += 1
            # the view changed: start over (what was static is no longer known to be)
            self.background = grey.copy()
            self.first_s = t_s
            self.places.clear()
            return suppress
        warm = self.first_s is not None and t_s - self.first_s >= self.static_s
        self._track_places(boxes, scores, t_s)
        if warm:
            for i in range(len(scores)):
                if scores[i] >= self.keep_score:
                    continue
                place = self._place_of(boxes[i])
                if place is None or place.age_s < self.static_s:
                    continue
                if self._foreground_share(foreground, boxes[i]) < self.max_foreground:
                    suppress[i] = True
                    place.suppressed += 1
        alpha = min(1.0, max(dt, 0.0) / self.background_s) if dt > 0 else 0.0
        if alpha:
            self.background += alpha * (grey - self.background)
        return suppress

    def judge(self, rgb: np.ndarray, dets: Detections, judged: np.ndarray, t_s: float) -> np.ndarray:
        """:meth:`update` with the ``judged`` boxes of ``dets`` (those that would be reported): a mask over all of
        ``dets``, true where a judged box is scenery."""
        mask = np.zeros(len(dets), bool)
        mask[judged] = self.update(rgb, dets.xyxy[judged], dets.confidence[judged], t_s)
        return mask

    def _camera_shift(self, grey: np.ndarray) -> float:
        """How far the whole image moved since the previous frame (phase correlation), in work pixels."""
        import cv2

        if self.previous is None or self.previous.shape != grey.shape:
            return 0.0
        (dx, dy), _ = cv2.phaseCorrelate(self.previous, grey)
        return float(np.hypot(dx, dy))

    def _place_of(self, box: np.ndarray) -> StaticPlace | None:
        if not self.places:
            return None
        ious = iou_matrix(box, np.stack([p.box for p in self.places]))[0]
        best = int(np.argmax(ious))
        return self.places[best] if ious[best] >= self.static_iou else None

    def _track_places(self, boxes: np.ndarray, scores: np.ndarray, t_s: float) -> None:
        for i in range(len(scores)):
            place = self._place_of(boxes[i])
            if place is None:
                self.places.append(StaticPlace(boxes[i].astype(np.float32).copy(), t_s, t_s))
            else:
                place.last_s = t_s
        # a place not seen for a while is forgotten (unless it has proven static: then keep it longer)
        self.places = [
            p
            for p in self.places
            if t_s - p.last_s <= (self.forget_s if p.age_s < self.static_s else max(self.forget_s, self.static_s))
        ]

    def _foreground_share(self, foreground: np.ndarray, box: np.ndarray) -> float:
        x1, y1, x2, y2 = (np.asarray(box, np.float64) * self.scale).round().astype(int)
        height, width = foreground.shape
        x1, x2 = np.clip([x1, x2], 0, width)
        y1, y2 = np.clip([y1, y2], 0, height)
        if x2 <= x1 or y2 <= y1:
            return 1.0
        return float(foreground[y1:y2, x1:x2].mean())


class SceneryFilter(FrameProcessor):
    """Marks weak, static boxes that match the background as scenery (see the module docstring)."""

    name = "scenery"

    def __init__(
        self,
        category: str = "Human",
        keep_score: float = 0.5,
        static_s: float = 5.0,
        max_foreground: float = 0.25,
        background_s: float = 20.0,
    ) -> None:
        for label, value in (("static_s", static_s), ("background_s", background_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"scenery.{label} must be a positive number of seconds, got {value!r}")
        for label, value in (("keep_score", keep_score), ("max_foreground", max_foreground)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"scenery.{label} must be a number in [0, 1], got {value!r}")
        self.category = category
        self.settings = {
            "keep_score": float(keep_score),
            "static_s": float(static_s),
            "max_foreground": float(max_foreground),
            "background_s": float(background_s),
        }
        self.model = SceneryModel(**self.settings)
        self.suppressed = 0

    def start(self, video: VideoInfo, frame_ratio: float) -> None:
        self.model = SceneryModel(**self.settings)
        self.suppressed = 0

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        dets = frame.detections.get(self.category)
        if dets is None:
            return
        weak = dets.data.get(BELOW_THRESHOLD)
        weak = np.zeros(len(dets), bool) if weak is None else np.asarray(weak, bool)
        # only boxes that would be reported are judged (weak ones are dropped anyway)
        mask = self.model.judge(image, dets, ~weak, frame.timestamp_ms / 1000)
        if mask.any():
            self.suppressed += int(mask.sum())
            frame.detections[self.category] = Detections(
                dets.xyxy, dets.confidence, dets.class_id, {**dets.data, BELOW_THRESHOLD: weak | mask}
            )

    def finish(self) -> dict[str, Any]:
        places = [p for p in self.model.places if p.suppressed]
        return {
            "boxes_suppressed": self.suppressed,
            "places": [
                {
                    "box": [round(float(v), 1) for v in p.box],
                    "first_s": round(p.first_s, 2),
                    "last_s": round(p.last_s, 2),
                    "boxes_suppressed": p.suppressed,
                }
                for p in places
            ],
            "camera_moved_frames": self.model.moving_frames,
        }

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.settings}
