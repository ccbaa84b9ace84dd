"""Multi-object tracking of people: ByteTrack (Roboflow's ``trackers`` package) as a frame processor.

ByteTrack associates boxes with tracks in two stages: boxes scoring at least ``high_score`` first, then the weak
ones (down to ``low_score``) with the tracks left over, which keeps a person's track alive while they are
partly hidden. The detector is asked for those weak boxes through ``score_floors``; the analyzer marks them
and removes them after the last processor, so the result file and the per-frame counts keep the detector's
own threshold, while tracks, occupancy, line and zone counts also use the weak boxes a track recovered.

Each reported box gets a ``track_id`` (``track_ids`` in the result file): 1, 2, 3... for a confirmed track
(matched in ``confirm_frames`` consecutive analysed frames), -1 for a box no confirmed track holds. A confirmed
track counts as a *person* when it lasts ``min_track_s`` seconds from first to last sighting: flicker and
short false tracks do not inflate the number of unique people.

Time in the tracker is the video's timestamps, so ``frame_ratio`` < 1 only thins the observations: the Kalman
filter predicts over the real gap and a lost track is kept ``lost_track_s`` seconds, whatever the ratio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdcount.analyzer.processors import BELOW_THRESHOLD, FrameProcessor
from crowdcount.detectors import Detections
from crowdcount.errors import ConfigError

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.video import VideoInfo

logger = logging.getLogger(__name__)

#: ``Detections.data`` key of the track id of each box (-1: no confirmed track).
TRACK_ID = "track_id"
#: Track id of a box that belongs to no confirmed track.
NO_TRACK = -1


@dataclass
class Track:
    """What was seen of one confirmed track."""

    track_id: int
    first_frame: int
    first_ms: float
    last_frame: int
    last_ms: float
    frames: int = 1

    def duration_s(self) -> float:
        """Seconds from the first to the last sighting."""
        return (self.last_ms - self.first_ms) / 1000.0


def _number(value: Any, name: str, low: float, high: float, integer: bool = False) -> float:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        span = f"an integer in [{low:g}, {high:g}]" if integer else f"a number in [{low:g}, {high:g}]"
        raise ConfigError(f"tracking.{name} must be {span}, got {value!r}")
    return value


class TrackingProcessor(FrameProcessor):
    """Tracks the boxes of one category (default ``Human``) with ByteTrack; counts unique people and occupancy.

    Args:
        category: the detector category to track.
        high_score: boxes scoring at least this are ByteTrack's first-stage boxes and may start tracks (give the
            detector's ``min_detection_score``: the boxes the result file reports).
        low_score: weaker boxes down to this score are asked of the detector for ByteTrack's second stage (1 or
            more: none).
        activation_score: a box matching no track starts one when it scores at least this (default ``high_score``
            + 0.2, as ByteTrack's "new track" threshold sits above its high threshold).
        lost_track_s: seconds a track is kept without a matching box before it ends.
        min_iou: the least IoU between a track's predicted box and a box for them to match.
        buffer_per_s: boxes are matched with a buffered IoU (C-BIoU, Yang et al. 2023): grown on each side by this
            share of their size per second between analysed frames (0.1 at 10 analysed fps, 0.5 at 2), so that
            people who moved further than their own width between two analysed frames still match.
        confirm_frames: consecutive analysed frames with a match before a track is confirmed and numbered.
        min_track_s: a confirmed track counts as a person when it spans at least this many seconds.
    """

    name = "tracking"
    frame_fields = {TRACK_ID: "track_ids"}  # noqa: RUF012

    def __init__(
        self,
        category: str = "Human",
        high_score: float = 0.4,
        low_score: float = 0.1,
        activation_score: float | None = None,
        lost_track_s: float = 1.5,
        min_iou: float = 0.3,
        buffer_per_s: float = 2.0,
        confirm_frames: int = 2,
        min_track_s: float = 1.0,
    ) -> None:
        self.category = category
        self.high_score = float(_number(high_score, "high_score", 0, 1))
        self.low_score = float(_number(low_score, "low_score", 0, 1))
        self.activation_score = (
            min(1.0, self.high_score + 0.2)
            if activation_score is None
            else float(_number(activation_score, "activation_score", 0, 1))
        )
        self.lost_track_s = float(_number(lost_track_s, "lost_track_s", 0, 3600))
        self.min_iou = float(_number(min_iou, "min_iou", 0, 1))
        self.buffer_per_s = float(_number(buffer_per_s, "buffer_per_s", 0, 100))
        self.confirm_frames = int(_number(confirm_frames, "confirm_frames", 1, 1000, integer=True))
        self.min_track_s = float(_number(min_track_s, "min_track_s", 0, 3600))
        self.score_floors = {category: self.low_score} if self.low_score < self.high_score else {}
        self._tracker: Any = None
        self._tracks: dict[int, Track] = {}
        self._present: list[list[int]] = []
        self._frames: list[tuple[int, float]] = []
        self._interval_s = 0.0

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "name": self.name,
            "tracker": f"ByteTrack (trackers {version('trackers')})",
            "category": self.category,
            "high_score": self.high_score,
            "low_score": self.low_score,
            "activation_score": self.activation_score,
            "lost_track_s": self.lost_track_s,
            "min_iou": self.min_iou,
            "buffer_per_s": self.buffer_per_s,
            "confirm_frames": self.confirm_frames,
            "min_track_s": self.min_track_s,
        }

    def start(self, video: VideoInfo, frame_ratio: float) -> None:
        from trackers import ByteTrackTracker
        from trackers.utils.iou import BIoU

        fps = video.fps if video.fps > 0 else 25.0
        analysed_fps = fps * frame_ratio
        self._interval_s = 1.0 / analysed_fps
        # lost_track_buffer is counted in 30 fps frames; timestamps make the tracker budget it in seconds
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(0, round(self.lost_track_s * 30)),
            frame_rate=analysed_fps,
            track_activation_threshold=self.activation_score,
            minimum_consecutive_frames=self.confirm_frames,
            minimum_iou_threshold=self.min_iou,
            high_conf_det_threshold=self.high_score,
            iou=BIoU(buffer_ratio=self.buffer_per_s / analysed_fps),
        )
        self._tracks = {}
        self._present = []
        self._frames = []

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        import supervision as sv

        dets = frame.detections.get(self.category)
        if dets is None:
            raise ConfigError(f"tracking: no detector reports category {self.category!r}")
        n = len(dets)
        candidates = sv.Detections(
            xyxy=dets.xyxy.astype(np.float32),
            confidence=dets.confidence.astype(np.float32),
            class_id=dets.class_id.astype(int),
            data={"index": np.arange(n)},
        )
        tracked = self._tracker.update(candidates, timestamp=frame.timestamp_ms / 1000.0)
        ids = np.full(n, NO_TRACK, np.int64)
        if len(tracked):
            raw = np.asarray(tracked.tracker_id, np.int64)
            ids[np.asarray(tracked.data["index"], np.int64)] = np.where(raw >= 0, raw + 1, NO_TRACK)
        frame.detections[self.category] = Detections(
            dets.xyxy, dets.confidence, dets.class_id, {**dets.data, TRACK_ID: ids}
        )
        present = sorted({int(i) for i in ids if i != NO_TRACK})
        for track_id in present:
            track = self._tracks.get(track_id)
            if track is None:
                self._tracks[track_id] = Track(
                    track_id, frame.index, frame.timestamp_ms, frame.index, frame.timestamp_ms
                )
            else:
                track.last_frame, track.last_ms = frame.index, frame.timestamp_ms
                track.frames += 1
        self._present.append(present)
        self._frames.append((frame.index, frame.timestamp_ms))

    def people(self) -> list[Track]:
        """The confirmed tracks that count as people (spanning at least ``min_track_s``), by id."""
        return [t for _, t in sorted(self._tracks.items()) if t.duration_s() >= self.min_track_s - 1e-9]

    def live_count(self) -> int:
        """Confirmed tracks seen in the last frame processed."""
        return len(self._present[-1]) if self._present else 0

    def tracks_so_far(self) -> int:
        """Confirmed tracks since the video started (before the ``min_track_s`` rule)."""
        return len(self._tracks)

    def finish(self) -> dict[str, Any]:
        people = self.people()
        counted = {t.track_id for t in people}
        occupancy = np.array([sum(1 for i in ids if i in counted) for ids in self._present], np.int64)
        peak = int(np.argmax(occupancy)) if len(occupancy) and occupancy.max() > 0 else None
        return {
            "unique_people": len(people),
            "confirmed_tracks": len(self._tracks),
            "max_occupancy": int(occupancy.max()) if len(occupancy) else 0,
            "mean_occupancy": round(float(occupancy.mean()), 3) if len(occupancy) else 0.0,
            "peak_frame_index": None if peak is None else self._frames[peak][0],
            "people": [
                {
                    "track_id": t.track_id,
                    "first_frame": t.first_frame,
                    "last_frame": t.last_frame,
                    "first_s": round(t.first_ms / 1000.0, 3),
                    "last_s": round(t.last_ms / 1000.0, 3),
                    "present_s": round(t.duration_s() + self._interval_s, 3),
                    "frames_seen": t.frames,
                }
                for t in people
            ],
            "per_frame": {"occupancy": occupancy.tolist()},
        }


def reported(dets: Detections) -> np.ndarray:
    """Mask of the boxes a result file reports (not marked under their detector's threshold)."""
    weak = dets.data.get(BELOW_THRESHOLD)
    return np.ones(len(dets), bool) if weak is None else ~np.asarray(weak, bool)
