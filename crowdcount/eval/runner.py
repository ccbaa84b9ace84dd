"""Getting detections to evaluate: by running a detector on a video's annotated frames or on annotated images,
or by reading a result file written by ``crowdcount analyze``."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.analyzer.counts import smooth_counts, smoothing_window
from crowdcount.analyzer.scenery import SceneryModel
from crowdcount.analyzer.video import FrameReader, probe_video
from crowdcount.detectors import Detections, Detector
from crowdcount.errors import ConfigError, VideoError
from crowdcount.eval.groundtruth import GroundTruth, IgnoreRegion
from crowdcount.eval.metrics import EvalReport, FrameMatch, match_frame, summarize_matches

logger = logging.getLogger(__name__)

#: Detections are kept down to this score when a detector runs for an evaluation, so that AP covers the
#: whole precision-recall curve; counts, precision and recall use the configured threshold.
SCORE_FLOOR = 0.05


@dataclass
class DetectionRun:
    """Detections per frame (1-based index) or image (path), as ``(xyxy pixels, scores)``.

    Attributes:
        threshold: the score threshold the detections were produced for (the detector's
            ``min_detection_score``); counts, precision and recall are taken there.
        score_floor: the lowest score kept (AP is computed over scores down to it).
        elapsed_s: wall time of decoding and detecting (0 for a result file).
    """

    detections: dict[int | str, tuple[np.ndarray, np.ndarray]]
    source: str
    category: str
    threshold: float
    score_floor: float
    width: int = 0
    height: int = 0
    detectors: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames per second of decoding plus detection (``nan`` when not measured)."""
        return len(self.detections) / self.elapsed_s if self.elapsed_s > 0 else math.nan


def _as_pair(dets: Detections) -> tuple[np.ndarray, np.ndarray]:
    return dets.xyxy.copy(), dets.confidence.copy()


class _ScoreFloor:
    """Lower a detector's ``min_detection_score`` for the duration of a ``with`` block."""

    def __init__(self, detector: Detector, floor: float) -> None:
        self.detector = detector
        self.floor = min(floor, detector.min_detection_score)
        self.saved = detector.min_detection_score

    def __enter__(self) -> float:
        self.detector.min_detection_score = self.floor
        return self.floor

    def __exit__(self, *exc: object) -> None:
        self.detector.min_detection_score = self.saved


def detect_video(
    path: str | Path,
    detector: Detector,
    frames: Sequence[int],
    score_floor: float = SCORE_FLOOR,
    scenery: SceneryModel | None = None,
) -> DetectionRun:
    """Run ``detector`` on the given 1-based ``frames`` of a video, decoding no further than the last one.

    With ``scenery`` (as ``analyze`` runs it by default), boxes at or above the threshold that it takes for
    scenery are dropped, as ``analyze`` drops them from its result file; like ``analyze``, only a ``Human``
    detector's boxes (the tracked category): faces are never scenery.
    """
    if scenery is not None and detector.category != "Human":
        scenery = None
    info = probe_video(path)
    wanted = set(frames)
    last = max(wanted)
    detector.load()
    detector.reset()
    threshold = detector.min_detection_score
    found: dict[int | str, tuple[np.ndarray, np.ndarray]] = {}
    started = time.perf_counter()
    with _ScoreFloor(detector, score_floor) as floor:
        reader = FrameReader(info, 1.0, 2 * detector.max_batch_size)
        batch: list[tuple[int, float, np.ndarray]] = []

        def flush() -> None:
            results = detector.detect([rgb for _, _, rgb in batch])
            for (index, timestamp_ms, rgb), dets in zip(batch, results, strict=True):
                if scenery is not None:
                    dets = dets[~scenery.judge(rgb, dets, dets.confidence >= threshold, timestamp_ms / 1000)]
                found[index] = _as_pair(dets)
            batch.clear()

        with reader:
            for frame in reader:
                if frame.index in wanted:
                    batch.append((frame.index, frame.timestamp_ms, frame.rgb))
                    if len(batch) >= detector.max_batch_size:
                        flush()
                if frame.index >= last:
                    break
        if batch:
            flush()
    elapsed = time.perf_counter() - started
    warnings = []
    missing = sorted(wanted - set(found))
    if missing:
        warnings.append(
            f"{info.path}: {len(missing)} annotated frames were not decoded (video ends at frame "
            f"{reader.frames_decoded})"
        )
        logger.warning(warnings[-1])
    return DetectionRun(
        found,
        str(path),
        detector.category,
        threshold,
        floor,
        info.width,
        info.height,
        [detector.describe()],
        elapsed,
        warnings,
    )


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB ``uint8``."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConfigError(f"image {str(path)!r} cannot be read", "check the paths in the imglab XML file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_image(path: str | Path) -> None:
    """:class:`ConfigError` when ``path`` is not an image file OpenCV can read (its header only is looked at)."""
    import cv2

    if not Path(path).is_file() or not cv2.haveImageReader(str(path)):
        raise ConfigError(f"image {str(path)!r} cannot be read", "check the paths in the imglab XML file")


def detect_images(paths: Sequence[str], detector: Detector, score_floor: float = SCORE_FLOOR) -> DetectionRun:
    """Run ``detector`` on image files, one at a time (their sizes differ), each decoded when its turn comes (a
    large set is never in memory at once); every file is checked to be an image before the detector runs."""
    for path in paths:
        check_image(path)
    detector.load()
    threshold = detector.min_detection_score
    found: dict[int | str, tuple[np.ndarray, np.ndarray]] = {}
    started = time.perf_counter()
    with _ScoreFloor(detector, score_floor) as floor:
        for path in paths:
            rgb = read_rgb(path)
            detector.reset()  # every image is a scene of its own
            found[path] = _as_pair(detector.detect([rgb])[0])
    elapsed = time.perf_counter() - started
    return DetectionRun(
        found, "images", detector.category, threshold, floor, detectors=[detector.describe()], elapsed_s=elapsed
    )


class ResultFileError(VideoError):
    """A result file that is missing, unreadable or damaged: it stands for its video, so it fails as a video that
    cannot be read does (exit code 1), whichever command reads it."""


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a result file written by ``crowdcount analyze`` (:class:`ResultFileError` when it cannot be)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ResultFileError(f"{str(path)!r} is not a readable result file: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("frames"), list):
        raise ResultFileError(f"{str(path)!r} is not a crowdcount result file (no 'frames' list)")
    return document


def damaged_document(source: str | Path, exc: Exception) -> ResultFileError:
    """The error of a result document whose contents are not what ``crowdcount analyze`` writes (a field
    missing or of the wrong type)."""
    return ResultFileError(
        f"result file {str(source)!r} is damaged ({type(exc).__name__}: {exc})",
        "write it again with 'crowdcount analyze'",
    )


def document_size(document: dict[str, Any], source: str | Path) -> tuple[int, int]:
    """The width and height of a result document's video (:class:`ResultFileError` when it does not say)."""
    video = document.get("video") or {}
    try:
        width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise damaged_document(source, exc) from None
    if width <= 0 or height <= 0:
        raise ResultFileError(
            f"result file {str(source)!r} does not record the video size", "write it again with 'crowdcount analyze'"
        )
    return width, height


def detections_from_document(document: dict[str, Any], category: str = "Human", source: str = "") -> DetectionRun:
    """The detections of ``category`` in a result document, in pixels of its video."""
    width, height = document_size(document, source)
    detectors = [d for d in document.get("detectors", []) if d.get("category") == category]
    if not detectors:
        found_categories = sorted({d.get("category") for d in document.get("detectors", [])})
        raise ConfigError(
            f"result file {source!r} has no {category} detections", f"it has: {', '.join(found_categories) or 'none'}"
        )
    threshold = float(detectors[0].get("arguments", {}).get("min_detection_score", 0.0))
    scale = np.array([width, height, width, height], np.float32)
    found: dict[int | str, tuple[np.ndarray, np.ndarray]] = {}
    lowest = 1.0
    try:
        for frame in document["frames"]:
            entry = frame.get(category) or {"boxes": [], "scores": []}
            yxyx = np.asarray(entry["boxes"], np.float32).reshape(-1, 4)
            scores = np.asarray(entry["scores"], np.float32).reshape(-1)
            if len(yxyx) != len(scores):
                raise ValueError(f"frame {frame.get('frame_index')} has {len(yxyx)} boxes and {len(scores)} scores")
            index = int(frame["frame_index"])
            if not (np.isfinite(yxyx).all() and np.isfinite(scores).all()):
                raise ValueError(f"frame {index} has a box or score that is not a number")
            if index in found:
                raise ValueError(f"frame {index} appears twice")
            if len(scores):
                lowest = min(lowest, float(scores.min()))
            found[index] = (yxyx[:, [1, 0, 3, 2]] * scale, scores)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise damaged_document(source, exc) from None
    return DetectionRun(found, source, category, threshold, min(threshold, lowest), width, height, detectors, 0.0, [])


def document_timing(document: dict[str, Any], source: str | Path) -> tuple[float, float, float]:
    """A result document's frame rate (0: unknown), share of frames analysed and count-smoothing seconds (0 when
    it does not say), :class:`ResultFileError` when one is not such a number."""
    try:
        fps = float(document.get("fps") or 0)
        ratio = float(document.get("frame_ratio", 1))
        seconds = float((document.get("count_smoothing") or {}).get("seconds", 0.0))
        if not (math.isfinite(fps) and fps >= 0):
            raise ValueError(f"fps is {fps:g}, not a frame rate")
        if not 0 < ratio <= 1:
            raise ValueError(f"frame_ratio is {ratio:g}, not a share of frames in (0, 1]")
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"count_smoothing.seconds is {seconds:g}, not seconds")
    except (AttributeError, TypeError, ValueError) as exc:
        raise damaged_document(source, exc) from None
    return fps, ratio, seconds


def match_run(
    run: DetectionRun,
    gt: GroundTruth,
    keys: Sequence[int | str],
    iou_threshold: float = 0.5,
    ignore_regions: Sequence[IgnoreRegion] = (),
) -> list[FrameMatch]:
    """Match the detections of ``keys`` (frames or images present in both) to the ground truth."""
    return [
        match_frame(*run.detections[key], gt.frames[key], iou_threshold, ignore_regions, key)
        for key in keys
        if key in run.detections
    ]


def count_window(seconds: float, fps: float, frame_ratio: float, run: DetectionRun, keys: Sequence[int | str]) -> int:
    """The running-median window, in evaluated frames, that spans ``seconds`` of video as ``analyze``'s does.

    The evaluated frames are the annotated ones with detections. When they are as dense as the analysed
    frames (``frame_ratio``: 1 for a video, the result file's for a result), the window is ``analyze``'s; when
    the ground truth is sparser (every 10th frame annotated), their own spacing turns seconds into frames, so
    they are not smoothed over ten times the time."""
    frames = sorted(k for k in keys if isinstance(k, int) and k in run.detections)
    if len(frames) < 2 or frames[-1] == frames[0]:
        return 1
    evaluated_ratio = (len(frames) - 1) / (frames[-1] - frames[0])
    # a sampler's floor spreads frames a little unevenly: within 10 % the analysis's own ratio is meant
    ratio = frame_ratio if evaluated_ratio >= 0.9 * frame_ratio else evaluated_ratio
    return smoothing_window(seconds, fps, ratio)


def evaluate_run(
    run: DetectionRun,
    gt: GroundTruth,
    keys: Sequence[int | str] | None = None,
    threshold: float | None = None,
    iou_threshold: float = 0.5,
    ignore_regions: Sequence[IgnoreRegion] = (),
    smooth: int = 1,
) -> EvalReport:
    """Evaluate a :class:`DetectionRun` against ground truth on ``keys`` (default: every annotated key).

    ``smooth`` > 1 takes the count metrics on the running median of the predicted counts over that many
    frames (in frame order); detection metrics are unaffected.
    """
    keys = list(gt.frames) if keys is None else list(keys)
    missing = [k for k in keys if k not in run.detections]
    if len(missing) == len(keys):
        raise ConfigError(
            f"no annotated frame has detections in {run.source!r}",
            "was it analysed with frame_ratio < 1, or is it another video?",
        )
    matches = match_run(run, gt, keys, iou_threshold, ignore_regions)
    threshold = run.threshold if threshold is None else threshold
    counts = None
    if smooth > 1:
        matches = sorted(matches, key=lambda m: (str(type(m.key)), m.key))
        counts = smooth_counts([m.count(threshold) for m in matches], smooth)
    report = summarize_matches(matches, threshold, iou_threshold, counts)
    report.extra.update(
        {
            "source": run.source,
            "ground_truth": gt.source,
            "category": run.category,
            "unit": "frame" if all(isinstance(k, int) for k in keys) else "image",
            "gt_scale": round(gt.scale, 6),
            "gt_scale_reason": gt.scale_reason,
            "score_floor": run.score_floor,
            "count_smoothing": smooth,
            "ignore_regions": [str(r) for r in ignore_regions],
            "frames_missing": len(missing),
            "elapsed_s": round(run.elapsed_s, 3),
            "fps": None if math.isnan(run.fps) else round(run.fps, 2),
            "detectors": run.detectors,
            "warnings": [*gt.warnings, *run.warnings]
            + ([f"{len(missing)} annotated frames have no detections in the source; skipped"] if missing else []),
        }
    )
    return report
