"""The annotated video: boxes, track ids, lines, zones and live counts drawn on the analysed frames.

A frame processor; put it after tracking and counting. With ``frame_ratio`` < 1 only the analysed frames are
written, at ``fps * frame_ratio`` so the video still plays in real time (a frame that was not analysed has no
boxes to draw). When an analysis fails part way, the file holds the frames analysed until then (``crowdcount
analyze`` writes it under a hidden temporary name and keeps it only when the video's analysis succeeded).
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
#: People when nothing is tracked (``--no-track``): bright, as grey is for boxes tracking left out.
PERSON_COLOUR = (60, 220, 60)
LINE_COLOUR = (0, 255, 255)
ZONE_COLOUR = (255, 160, 0)
OTHER_COLOUR = (255, 255, 255)
#: The identity of a face no one in the gallery matches (``crowdcount.faces.gallery.UNKNOWN``; the analyzer does not
#: import faces): such faces get no name drawn.
UNKNOWN_NAME = "unknown"


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


FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Faces are drawn in this colour (BGR), thin and without a label: the header says how many there are.
FACE_COLOUR = (255, 255, 255)
#: Opacity of the header band: people under it stay visible.
HEADER_ALPHA = 0.6


def text_size(text: str, scale: float) -> tuple[int, int, int]:
    """Width, height above the baseline and depth below it of ``text`` as :func:`_text` draws it (outline included)."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 3)
    return width, height, baseline


def fit_text(text: str, org: tuple[int, int], scale: float, shape: Sequence[int], top: int = 0) -> tuple[int, int]:
    """Where to draw ``text`` (bottom-left origin) nearest ``org`` so that all of it lies inside an image of
    ``shape`` and below the first ``top`` rows (the header band)."""
    width, height, baseline = text_size(text, scale)
    frame_h, frame_w = int(shape[0]), int(shape[1])
    x = max(1, min(int(org[0]), frame_w - width - 1))
    y = max(top + height + 2, min(int(org[1]), frame_h - baseline - 1))
    return x, y


def draw_text(image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    """``text`` in ``colour`` with a black outline (legible on any background), ``org`` its bottom-left."""
    cv2.putText(image, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, FONT, scale, colour, 1, cv2.LINE_AA)


def _label(
    image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float, top: int = 0
) -> None:
    """``text`` near ``org``, moved inside the image and below the header band."""
    draw_text(image, text, fit_text(text, org, scale, image.shape, top), colour, scale)


def pack_lines(parts: Sequence[str], scale: float, width: int, sep: str = "   ") -> list[str]:
    """``parts`` joined by ``sep`` into as few lines as fit ``width`` pixels (a part wider than that gets a line)."""
    lines: list[str] = []
    for part in parts:
        if lines and text_size(lines[-1] + sep + part, scale)[0] + 12 <= width:
            lines[-1] += sep + part
        else:
            lines.append(part)
    return lines


def _line_step(scale: float) -> int:
    return round(19 * scale / 0.5)


def header_height(lines: int, scale: float) -> int:
    """Height in pixels of a header band of ``lines`` lines."""
    return _line_step(scale) * lines + 7 if lines else 0


def draw_header(canvas: np.ndarray, lines: Sequence[str], scale: float) -> int:
    """A translucent dark band across the top with ``lines`` in white; returns its height."""
    bottom = min(header_height(len(lines), scale), canvas.shape[0])
    if not bottom:
        return 0
    band = canvas[:bottom]
    band[:] = (band * (1 - HEADER_ALPHA)).astype(canvas.dtype)
    step = _line_step(scale)
    for i, line in enumerate(lines):
        draw_text(canvas, line, (6, step * (i + 1)), (255, 255, 255), scale)
    return bottom


def draw_lines(
    canvas: np.ndarray,
    lines: Sequence[tuple[str, np.ndarray]],
    scale: float,
    top: int = 0,
) -> None:
    """Each counting line as an arrow ("in" crosses it from its left to its right), its name by the head."""
    for name, points in lines:
        a, b = (tuple(int(v) for v in p) for p in np.round(points))
        cv2.arrowedLine(canvas, a, b, LINE_COLOUR, 2, cv2.LINE_AA, tipLength=0.03)
        _label(canvas, _named("line", name), (b[0] + 6, b[1] - 8), LINE_COLOUR, scale, top)  # by the arrow head


def draw_zones(
    canvas: np.ndarray,
    zones: Sequence[tuple[str, np.ndarray]],
    scale: float,
    top: int = 0,
) -> None:
    """Each zone tinted and outlined, with its name."""
    for name, polygon in zones:
        pts = np.round(polygon).astype(np.int32).reshape(-1, 1, 2)
        x0, y0, w, h = cv2.boundingRect(pts)
        x0, y0 = max(x0, 0), max(y0, 0)
        w, h = min(w, canvas.shape[1] - x0), min(h, canvas.shape[0] - y0)
        if w > 0 and h > 0:  # tint only the zone's bounding box: cheap
            roi = canvas[y0 : y0 + h, x0 : x0 + w]
            tinted = roi.copy()
            cv2.fillPoly(tinted, [pts - [x0, y0]], ZONE_COLOUR)
            cv2.addWeighted(tinted, 0.2, roi, 0.8, 0, dst=roi)
        cv2.polylines(canvas, [pts], True, ZONE_COLOUR, 2, cv2.LINE_AA)
        corner = tuple(int(v) for v in np.round(polygon[np.argmin(polygon.sum(axis=1))]))
        _label(canvas, _named("zone", name), (corner[0] + 6, corner[1] + 18), ZONE_COLOUR, scale, top)


def draw_boxes(canvas: np.ndarray, category: str, dets: Any, scale: float, top: int = 0) -> None:
    """``dets`` of ``category``: people in their track's colour with ``#id`` (grey: no track), faces thin and white
    with the name under a face the gallery knows (no "Face" text: it would cover the person's id); a weak box no
    track holds is not drawn."""
    ids = dets.data.get(TRACK_ID)
    weak = _weak(dets)
    face = category == "Face"
    names = dets.data.get("identity") if face else None  # from the identify stage (--identify), when it ran
    for i, box in enumerate(np.round(dets.xyxy).astype(int)):
        track = int(ids[i]) if ids is not None else NO_TRACK
        if weak[i] and track == NO_TRACK:
            continue  # a weak box no track holds is not reported anywhere
        other = not face and ids is None and category != "Human"
        if face or other:
            colour = FACE_COLOUR if face else OTHER_COLOUR
        else:  # grey marks a box tracking left out; without tracking, people are simply people
            colour = _colour(track) if ids is not None else PERSON_COLOUR
        cv2.rectangle(
            canvas, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), colour, 1 if weak[i] or face else 2
        )
        if track != NO_TRACK:
            _label(canvas, f"#{track}", (int(box[0]), int(box[1]) - 4), colour, scale, top)
        if names is not None and str(names[i]) != UNKNOWN_NAME:  # a known face: its name under it
            name = str(names[i])
            _label(canvas, name, (int(box[0]), int(box[3]) + text_size(name, scale)[1] + 4), colour, scale, top)
        elif other:
            _label(canvas, category, (int(box[0]), int(box[1]) - 4), colour, scale * 0.8, top)


def _named(kind: str, name: str) -> str:
    """``line door``; a default name (``line1``) as it is."""
    return name if name.startswith(kind) else f"{kind} {name}"


def _legend(detections: dict[str, Any]) -> list[str]:
    """What the grey and white boxes of a frame mean, when it has any."""
    legend = []
    untracked = False
    for category, dets in detections.items():
        ids = dets.data.get(TRACK_ID)
        if category != "Face" and ids is not None:
            untracked |= bool(((np.asarray(ids) == NO_TRACK) & ~_weak(dets)).any())
    if untracked:
        legend.append("grey: untracked")
    faces = detections.get("Face")
    if faces is not None and bool((~_weak(faces)).any()):
        legend.append("white: faces")
    return legend


def frame_scale(height: int) -> float:
    """Text scale for a frame ``height`` pixels tall."""
    return max(0.4, min(1.2, height / 720))


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
        self._scale = frame_scale(video.height)
        self._written = 0

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        if self._writer is None:
            return
        self._writer.write(self.draw(frame, image))
        self._written += 1

    def draw(self, frame: FrameResult, image: np.ndarray) -> np.ndarray:
        """The BGR image of ``frame`` (``image`` is its RGB picture) with zones, lines, boxes and the header drawn.

        The header (a translucent band at the top) says, per category, the boxes reported in this frame (before
        the count's running median), the tracked people now and the tracks so far, and the frame's time; labels
        are kept inside the picture and below the band.
        """
        canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        scale = self._scale
        lines, zones = self.counting.pixel_geometry() if self.counting is not None else ([], [])
        live = self.counting.current() if self.counting is not None else {"lines": {}, "zones": {}}
        in_frame = ", ".join(f"{c} {int((~_weak(d)).sum())}" for c, d in frame.detections.items())
        header = [f"in frame: {in_frame}"]
        if self.tracking is not None:
            header.append(f"tracked now: {self.tracking.live_count()}")
            header.append(f"tracks so far: {self.tracking.tracks_so_far()}")
        header += [f"{name}: in {n_in} / out {n_out}" for name, (n_in, n_out) in live["lines"].items()]
        header += [f"{name}: {n} in zone" for name, n in live["zones"].items()]
        header.append(f"frame {frame.index}, {frame.timestamp_ms / 1000:.1f} s")
        text = pack_lines(header + _legend(frame.detections), scale, canvas.shape[1])
        top = min(header_height(len(text), scale), canvas.shape[0])
        draw_zones(canvas, zones, scale, top)
        draw_lines(canvas, lines, scale, top)
        for category, dets in frame.detections.items():
            draw_boxes(canvas, category, dets, scale, top)
        draw_header(canvas, text, scale)
        return canvas

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
