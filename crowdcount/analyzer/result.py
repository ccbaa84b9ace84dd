"""The result file: one JSON document per video, and per-frame counts as CSV.

The document keeps the seed's shape so existing consumers still read it::

    {"fps": 10.0, "codec_code": 875967080,
     "frames": [{"frame_index": 1, "frame_timestamp": 0.0,
                 "Human": {"classes": [1], "boxes": [[ymin, xmin, ymax, xmax]], "scores": [0.97]}}]}

``frame_index`` is 1-based, ``frame_timestamp`` in milliseconds, boxes normalised to the frame size. Each
category also holds ``count``: the people counted in that frame, after the running median of
``count_smoothing`` (equal to the number of boxes when smoothing is off), and any per-detection fields of the
frame processors (e.g. ``track_ids``). Beside those keys: ``schema_version``, ``video`` metadata,
``frame_ratio``, ``count_smoothing``, ``detectors`` (arguments and model provenance), ``processors``,
``summary`` per category, ``warnings``, and one section per frame processor (e.g. ``tracking``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.analyzer.analyzer import AnalysisResult
from crowdcount.analyzer.counts import smooth_counts, smoothing_window
from crowdcount.analyzer.files import replaced_atomically

SCHEMA_VERSION = 1

#: Document keys a frame processor's section may not take.
_RESERVED_KEYS = frozenset(
    {
        "schema_version",
        "crowdcount_version",
        "fps",
        "codec_code",
        "video",
        "frame_ratio",
        "count_smoothing",
        "detectors",
        "processors",
        "summary",
        "elapsed_s",
        "warnings",
        "frames",
    }
)


def smoothing_frames(result: AnalysisResult) -> int:
    """The running-median window, in analysed frames, that the counts of ``result`` use."""
    return smoothing_window(result.count_smoothing_s, result.video.fps, result.frame_ratio)


def frame_counts(result: AnalysisResult, category: str) -> np.ndarray:
    """People counted per analysed frame in ``category``: box counts, smoothed as configured (int64)."""
    raw = np.array([len(f.detections[category]) for f in result.frames], dtype=np.int64)
    window = smoothing_frames(result)
    if window == 1:
        return raw
    # the median of an odd window of whole numbers is a whole number
    return np.rint(smooth_counts(raw, window)).astype(np.int64)


def summarize(result: AnalysisResult) -> dict[str, dict[str, Any]]:
    """Per category: frames analysed, max / mean count, when the (first) peak was, total detections.

    Counts are the smoothed per-frame counts (see ``count_smoothing_s``); ``total_detections`` counts boxes.
    With nothing found, the peak's frame and time are ``None``."""
    summary: dict[str, dict[str, Any]] = {}
    for category in result.categories:
        counts = frame_counts(result, category)
        boxes = sum(len(f.detections[category]) for f in result.frames)
        if len(counts) and counts.max() > 0:
            peak = int(np.argmax(counts))
            peak_frame = result.frames[peak]
            summary[category] = {
                "frames_analyzed": len(counts),
                "max_count": int(counts.max()),
                "mean_count": round(float(counts.mean()), 3),
                "peak_frame_index": peak_frame.index,
                "peak_timestamp": round(peak_frame.timestamp_ms, 1),
                "total_detections": boxes,
            }
        else:
            summary[category] = {
                "frames_analyzed": len(counts),
                "max_count": 0,
                "mean_count": 0.0,
                "peak_frame_index": None,
                "peak_timestamp": None,
                "total_detections": boxes,
            }
    return summary


def to_document(result: AnalysisResult) -> dict[str, Any]:
    """The result-file document of an analysis (JSON-serialisable)."""
    width, height = result.video.width, result.video.height
    counts = {category: frame_counts(result, category) for category in result.categories}
    frames = []
    for i, frame in enumerate(result.frames):
        entry: dict[str, Any] = {"frame_index": frame.index, "frame_timestamp": round(frame.timestamp_ms, 3)}
        for category, dets in frame.detections.items():
            entry[category] = {
                "classes": dets.class_id.tolist(),
                "boxes": np.round(dets.normalized_yxyx(width, height).astype(np.float64), 5).tolist(),
                "scores": np.round(dets.confidence.astype(np.float64), 5).tolist(),
                "count": int(counts[category][i]),
            }
            for key, name in result.frame_fields.items():
                if key in dets.data:
                    entry[category][name] = plain_values(dets.data[key])
        frames.append(entry)
    video = result.video.to_dict()
    if video.get("path") and "://" not in str(video["path"]):  # a local file: found again from any folder (find)
        video["path"] = os.path.abspath(video["path"])
    video["frames_decoded"] = result.frames_decoded
    if not result.video.frame_count and result.video.fps > 0:  # raw streams announce no frame count
        video["duration_s"] = round(result.frames_decoded / result.video.fps, 3)
    video["truncated"] = result.truncated
    clashes = sorted(set(result.sections) & _RESERVED_KEYS)
    if clashes:
        raise ValueError(f"frame processor sections may not use the result-file keys {clashes}")
    return {
        "schema_version": SCHEMA_VERSION,
        "crowdcount_version": result.crowdcount_version,
        "fps": result.video.fps,
        "codec_code": result.video.codec_code,
        "video": video,
        "frame_ratio": result.frame_ratio,
        "count_smoothing": {"seconds": result.count_smoothing_s, "frames": smoothing_frames(result)},
        "detectors": result.detectors,
        "processors": result.processors,
        "summary": summarize(result),
        "elapsed_s": round(result.elapsed_s, 3),
        "warnings": list(result.warnings),
        **result.sections,
        "frames": frames,
    }


def plain_values(values: np.ndarray) -> list[Any]:
    """A 1-D array as JSON values (floats rounded to 5 places)."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        return np.round(array.astype(np.float64), 5).tolist()
    return array.tolist()


def _atomic_write(path: Path, text: str) -> None:
    with replaced_atomically(path) as tmp:
        # created as open() creates any file (0666 less the umask), not mkstemp's 0600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


def dumps(document: dict[str, Any]) -> str:
    """The result file's text (compact frames, one line per frame would be larger)."""
    return json.dumps(document, separators=(",", ":"))


def write_json(document: dict[str, Any], path: str | Path) -> Path:
    """Write a result document atomically (a reader never sees half a file)."""
    path = Path(path)
    _atomic_write(path, dumps(document))
    return path


def frame_series(document: dict[str, Any]) -> dict[str, list[Any]]:
    """The per-frame series of the frame processors' sections (their ``per_frame`` mapping of a column name to
    one value per analysed frame), e.g. ``occupancy`` of tracking, ``zone:door`` of counting."""
    n = len(document["frames"])
    series: dict[str, list[Any]] = {}
    for key, section in document.items():
        if key in _RESERVED_KEYS or not isinstance(section, dict) or not isinstance(section.get("per_frame"), dict):
            continue
        for column, values in section["per_frame"].items():
            if isinstance(values, list) and len(values) == n:
                series[column] = values
    return series


def csv_rows(document: dict[str, Any]) -> list[list[Any]]:
    """Per-frame counts: a header, then ``frame_index, timestamp_ms, <count per category>``, then the frame
    processors' per-frame series (:func:`frame_series`: tracked occupancy, people in each zone...).

    Counts are the document's (smoothed) ``count``; documents older than it give the number of boxes."""
    categories = [d["category"] for d in document["detectors"]]
    series = frame_series(document)
    rows: list[list[Any]] = [["frame_index", "timestamp_ms", *categories, *series]]
    for i, frame in enumerate(document["frames"]):
        counts = (frame[c].get("count", len(frame[c]["scores"])) for c in categories)
        rows.append([frame["frame_index"], frame["frame_timestamp"], *counts, *(v[i] for v in series.values())])
    return rows


def write_csv(document: dict[str, Any], path: str | Path) -> Path:
    """Write per-frame counts as CSV, atomically."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(csv_rows(document))
    path = Path(path)
    _atomic_write(path, buffer.getvalue())
    return path
