"""The annotated video: boxes, track ids, lines, zones and live counts drawn on the analysed frames.

A frame processor; put it after tracking and counting. With ``frame_ratio`` < 1 only the analysed frames are
written, at ``fps * frame_ratio`` so the video still plays in real time (a frame that was not analysed has no
boxes to draw). When an analysis fails part way, the file holds the frames analysed until then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from crowdcount.analyzer.processors import BELOW_THRESHOLD, FrameProcessor
from crowdcount.analyzer.tracking import NO_TRACK, TRACK_ID
from crowdcount.errors import ConfigError, VideoError

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.counting import CountingProcessor
    from crowdcount.analyzer.tracking import TrackingProcessor
    from crowdcount.analyzer.video import VideoInfo

logger = logging.getLogger(__name__)

#: Containers OpenCV's FFmpeg writes with the ``mp4v`` codec.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
#: Track colours (BGR), chosen by track id.
PALETTE = [
    (75, 25, 230),
    (75, 180, 60),
    (25, 225, 255),
    (200, 130, 0),
    (48, 130, 245),
    (180, 30, 145),
    (240, 240, 70),
    (230, 50, 240),
    (60, 245, 210),
    (212, 190, 250),
    (128, 128, 0),
    (255, 190, 220),
]
UNTRACKED = (160, 160, 160)
LINE_COLOUR = (0, 255, 255)
ZONE_COLOUR = (255, 160, 0)
OTHER_COLOUR = (255, 255, 255)


def check_annotate_path(path: str | Path, option: str = "--annotate", suffixes: Sequence[str] = VIDEO_SUFFIXES) -> Path:
    """Fail before any analysis when a file (an annotated video, a plot) cannot be written at ``path``."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {str(path)!r} must end in one of {', '.join(suffixes)}")
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a folder", "give a file name, e.g. out.mp4")
    from crowdcount.analyzer.files import check_writable

    check_writable(path.parent, option)
    return path


def _text(image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


class AnnotateProcessor(FrameProcessor):
    """Writes each analysed frame with what was found drawn on it.

    Args:
        output: the file to write for a video (``None``: none for that video); a ``.mp4`` (or ``.avi``...) path.
        tracking: the tracker, for the live count of tracked people (optional).
        counting: the line and zone counter, for the geometry and live counts (optional).
    """

    name = "annotate"

    def __init__(
        self,
        output: Callable[[VideoInfo], str | Path | None],
        tracking: TrackingProcessor | None = None,
        counting: CountingProcessor | None = None,
    ) -> None:
        self.output = output
        self.tracking = tracking
        self.counting = counting
        self._writer: cv2.VideoWriter | None = None
        self._path: Path | None = None
        self._scale = 0.5
        self._written = 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "codec": "mp4v"}

    def start(self, video: VideoInfo, frame_ratio: float) -> None:
        self.close()
        self._path = None
        target = self.output(video)
        if target is None:
            return
        self._path = Path(target)
        fps = (video.fps if video.fps > 0 else 25.0) * frame_ratio
        writer = cv2.VideoWriter(str(self._path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (video.width, video.height))
        if not writer.isOpened():
            raise VideoError(f"--annotate: cannot write a video to {str(self._path)!r}", "check the path and suffix")
        self._writer = writer
        self._scale = max(0.4, min(1.2, video.height / 720))
        self._written = 0

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        if self._writer is None:
            return
        canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        lines, zones = self.counting.pixel_geometry() if self.counting is not None else ([], [])
        live = self.counting.live() if self.counting is not None else {"lines": {}, "zones": {}}
        self._draw_zones(canvas, zones, live["zones"])
        self._draw_lines(canvas, lines, live["lines"])
        for category, dets in frame.detections.items():
            self._draw_boxes(canvas, category, dets)
        header = [f"{c}: {int((~_weak(d)).sum())}" for c, d in frame.detections.items()]
        if self.tracking is not None:
            header.append(f"tracked now: {self.tracking.live_count()}")
            header.append(f"tracks so far: {self.tracking.tracks_so_far()}")
        self._draw_header(canvas, ["  ".join(header), f"frame {frame.index}  {frame.timestamp_ms / 1000:.1f} s"])
        self._writer.write(canvas)
        self._written += 1

    def _draw_boxes(self, canvas: np.ndarray, category: str, dets: Any) -> None:
        ids = dets.data.get(TRACK_ID)
        weak = _weak(dets)
        for i, box in enumerate(np.round(dets.xyxy).astype(int)):
            track = int(ids[i]) if ids is not None else NO_TRACK
            if weak[i] and track == NO_TRACK:
                continue  # a weak box no track holds is not reported anywhere
            colour = _colour(track) if ids is not None else OTHER_COLOUR
            cv2.rectangle(canvas, tuple(box[:2]), tuple(box[2:]), colour, 1 if weak[i] else 2)
            if track != NO_TRACK:
                _text(canvas, f"#{track}", (int(box[0]), max(10, int(box[1]) - 4)), colour, self._scale)
            elif ids is None and category != "Human":
                _text(canvas, category, (int(box[0]), max(10, int(box[1]) - 4)), colour, self._scale * 0.8)

    def _draw_lines(
        self, canvas: np.ndarray, lines: Sequence[tuple[str, np.ndarray]], counts: dict[str, tuple[int, int]]
    ) -> None:
        for name, points in lines:
            a, b = (tuple(int(v) for v in p) for p in np.round(points))
            cv2.arrowedLine(canvas, a, b, LINE_COLOUR, 2, cv2.LINE_AA, tipLength=0.03)
            n_in, n_out = counts.get(name, (0, 0))
            _text(canvas, f"{name}: in {n_in} / out {n_out}", (a[0] + 4, a[1] + 16), LINE_COLOUR, self._scale)

    def _draw_zones(self, canvas: np.ndarray, zones: Sequence[tuple[str, np.ndarray]], counts: dict[str, int]) -> None:
        for name, polygon in zones:
            pts = np.round(polygon).astype(np.int32).reshape(-1, 1, 2)
            x0, y0, w, h = cv2.boundingRect(pts)
            if w and h:  # tint only the zone's bounding box: cheap
                roi = canvas[y0 : y0 + h, x0 : x0 + w]
                tinted = roi.copy()
                cv2.fillPoly(tinted, [pts - [x0, y0]], ZONE_COLOUR)
                cv2.addWeighted(tinted, 0.2, roi, 0.8, 0, dst=roi)
            cv2.polylines(canvas, [pts], True, ZONE_COLOUR, 2, cv2.LINE_AA)
            corner = tuple(int(v) for v in np.round(polygon[np.argmin(polygon.sum(axis=1))]))
            _text(canvas, f"{name}: {counts.get(name, 0)}", (corner[0] + 4, corner[1] + 16), ZONE_COLOUR, self._scale)

    def _draw_header(self, canvas: np.ndarray, lines: list[str]) -> None:
        step = int(22 * self._scale / 0.5)
        cv2.rectangle(canvas, (0, 0), (canvas.shape[1], step * len(lines) + 6), (0, 0, 0), -1)
        for i, line in enumerate(lines):
            _text(canvas, line, (6, step * (i + 1)), (255, 255, 255), self._scale)

    def finish(self) -> dict[str, Any] | None:
        self.close()
        if self._path is None:
            return None
        section = {"path": str(self._path), "frames_written": self._written}
        self._path = None
        return section

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _colour(track: int) -> tuple[int, int, int]:
    return PALETTE[track % len(PALETTE)] if track != NO_TRACK else UNTRACKED


def _weak(dets: Any) -> np.ndarray:
    weak = dets.data.get(BELOW_THRESHOLD)
    return np.zeros(len(dets), bool) if weak is None else np.asarray(weak, bool)
