"""Tracking metrics: CLEAR-MOT (MOTA, ID switches) and identity (IDF1) against MOTChallenge ground truth, and
the error of the number of unique people.

The metric maths are the ``trackers`` package's port of TrackEval (the MOTChallenge reference code). What is
done here is TrackEval's MOTChallenge pre-processing, with this project's ignore rules: ground-truth boxes that
are ignored (``conf`` 0, or their bottom-centre in an ``--ignore`` region) are dropped, and so are the tracked
boxes that match one of them (IoU >= the threshold, one-to-one, Hungarian) or, unmatched, stand in an ignore
region: they are neither right nor wrong. Only analysed frames are evaluated (with ``frame_ratio`` < 1, the
frames the tracker never saw are not counted as misses).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.detectors import Detector
from crowdcount.detectors.base import iou_matrix
from crowdcount.errors import ConfigError
from crowdcount.eval.groundtruth import GroundTruth, IgnoreRegion, in_ignore_regions
from crowdcount.eval.runner import damaged_document, document_size


@dataclass
class TrackRun:
    """Tracked boxes per analysed frame: ``(xyxy pixels, track ids)`` (ids > 0; boxes of no track left out), and
    the ids that count as people (confirmed tracks long enough)."""

    frames: dict[int, tuple[np.ndarray, np.ndarray]]
    people: list[int]
    source: str
    frame_ratio: float = 1.0
    elapsed_s: float = 0.0
    tracking: dict[str, Any] = field(default_factory=dict)
    detectors: list[dict[str, Any]] = field(default_factory=list)


def _repeated(ids: np.ndarray) -> int | None:
    """The smallest id listed more than once in one frame, or ``None``."""
    unique, times = np.unique(ids, return_counts=True)
    return int(unique[times > 1][0]) if np.any(times > 1) else None


def track_run_from_document(document: dict[str, Any], category: str = "Human", source: str = "") -> TrackRun:
    """The tracks recorded in a result file (its ``track_ids`` and ``tracking`` section)."""
    section = document.get("tracking")
    if not isinstance(section, dict):
        raise ConfigError(
            f"result file {source!r} has no tracks", "analyse the video with tracking on (the default) first"
        )
    width, height = document_size(document, source)
    scale = np.array([width, height, width, height], np.float32)
    frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    try:
        for frame in document["frames"]:
            entry = frame.get(category) or {"boxes": [], "track_ids": []}
            yxyx = np.asarray(entry["boxes"], np.float32).reshape(-1, 4)
            ids = np.asarray(entry.get("track_ids", [-1] * len(yxyx)), np.int64).reshape(-1)
            if len(ids) != len(yxyx):
                raise ValueError(f"frame {frame.get('frame_index')} has {len(yxyx)} boxes and {len(ids)} track ids")
            index = int(frame["frame_index"])
            if not np.isfinite(yxyx).all():
                raise ValueError(f"frame {index} has a box that is not a number")
            if index in frames:
                raise ValueError(f"frame {index} appears twice")
            keep = ids > 0
            twice = _repeated(ids[keep])
            if twice is not None:
                raise ValueError(f"frame {index} has track {twice} twice")
            frames[index] = (yxyx[keep][:, [1, 0, 3, 2]] * scale, ids[keep])
        people = [int(p["track_id"]) for p in section.get("people", [])]
        frame_ratio = float(document.get("frame_ratio", 1.0))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise damaged_document(source, exc) from None
    return TrackRun(frames, people, source, frame_ratio, 0.0, section, document.get("detectors", []))


def track_video(
    path: str | Path,
    detector: Detector,
    processors: Sequence[FrameProcessor],
    last_frame: int,
    frame_ratio: float = 1.0,
) -> TrackRun:
    """Run ``detector`` and ``processors`` (the tracker, and the scenery filter before it as ``analyze`` runs
    it) over a video's frames up to ``last_frame``, as ``crowdcount analyze`` would."""
    from crowdcount.analyzer import VideoAnalyzer
    from crowdcount.analyzer.tracking import TRACK_ID

    processor = next(p for p in processors if isinstance(p, TrackingProcessor))
    analyzer = VideoAnalyzer([detector], frame_ratio=frame_ratio, processors=list(processors))
    started = time.perf_counter()
    result = analyzer.analyze(path, last_frame=last_frame)
    elapsed = time.perf_counter() - started
    frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for frame in result.frames:
        dets = frame.detections[detector.category]
        ids = np.asarray(dets.data[TRACK_ID], np.int64)
        frames[frame.index] = (dets.xyxy[ids > 0], ids[ids > 0])
    section = result.sections[processor.name]
    return TrackRun(
        frames,
        [p["track_id"] for p in section["people"]],
        str(path),
        result.frame_ratio,
        elapsed,
        section,
        result.detectors,
    )


def _one_to_one(ious: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment

    if not ious.size:
        return []
    rows, cols = linear_sum_assignment(-ious)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if ious[r, c] >= threshold]


def evaluate_tracking(
    run: TrackRun,
    gt: GroundTruth,
    keys: Sequence[int] | None = None,
    iou_threshold: float = 0.5,
    ignore_regions: Sequence[IgnoreRegion] = (),
) -> dict[str, Any]:
    """MOTA, MOTP, IDF1, ID switches... of ``run`` on the annotated frames ``keys`` it analysed, and the
    unique-people error (see the module docstring)."""
    from trackers.eval import compute_clear_metrics, compute_identity_metrics

    keys = [k for k in (list(gt.frames) if keys is None else keys) if isinstance(k, int)]
    frames = [k for k in keys if k in run.frames]
    if not frames:
        raise ConfigError(f"no annotated frame was analysed in {run.source!r}", "is it another video?")
    if any(gt.frames[k].ids is None for k in frames):
        raise ConfigError(f"ground truth {gt.source!r} has no person ids (tracking needs MOTChallenge ids)")
    for key in frames:
        twice = _repeated(np.asarray(gt.frames[key].ids))
        if twice is not None:
            raise ConfigError(
                f"ground truth {gt.source!r}: frame {key} has person {twice} twice",
                "tracking needs one box a person a frame: is it MOTChallenge ground truth?",
            )
    gt_ids, trk_ids, sims = [], [], []
    ignored_hits: dict[int, int] = {}
    seen: dict[int, int] = {}
    gt_people: set[int] = set()
    occupancy_err = []
    for key in frames:
        truth = gt.frames[key]
        xyxy, ids = run.frames[key]
        skip_gt = truth.ignore | in_ignore_regions(truth.xyxy, ignore_regions)
        drop = in_ignore_regions(xyxy, ignore_regions)
        all_ious = iou_matrix(xyxy, truth.xyxy)
        for d, g in _one_to_one(all_ious, iou_threshold):
            drop[d] = bool(skip_gt[g])
        for track_id, dropped in zip(ids.tolist(), drop.tolist(), strict=True):
            seen[track_id] = seen.get(track_id, 0) + 1
            ignored_hits[track_id] = ignored_hits.get(track_id, 0) + int(dropped)
        keep_gt = ~skip_gt
        assert truth.ids is not None
        gt_ids.append(truth.ids[keep_gt])
        trk_ids.append(ids[~drop])
        sims.append(all_ious[~drop][:, keep_gt].T)
        gt_people.update(truth.ids[keep_gt].tolist())
        occupancy_err.append(len(set(ids[~drop].tolist()) & set(run.people)) - int(keep_gt.sum()))
    clear = compute_clear_metrics(gt_ids, trk_ids, sims, iou_threshold)
    identity = compute_identity_metrics(gt_ids, trk_ids, sims, iou_threshold)
    # a person counts as found in the evaluated frames when most of their sightings there are not ignored
    people = [p for p in run.people if seen.get(p, 0) and ignored_hits.get(p, 0) * 2 < seen[p]]
    err = np.asarray(occupancy_err, np.float64)
    truth_boxes = int(clear["CLR_TP"]) + int(clear["CLR_FN"])
    tracked_boxes = int(clear["CLR_TP"]) + int(clear["CLR_FP"])
    report = {
        "source": run.source,
        "ground_truth": gt.source,
        "frame_ratio": run.frame_ratio,
        "frames_evaluated": len(frames),
        "iou_threshold": iou_threshold,
        "ignore_regions": [str(r) for r in ignore_regions],
        # undefined (None: "-" in the table, null in JSON) where their denominator is 0: no person in the truth,
        # no box tracked, nothing matched ("0.000" would read as a tracker that failed everyone)
        "MOTA": clear["MOTA"] if truth_boxes else None,
        "MOTP": clear["MOTP"] if clear["CLR_TP"] else None,
        "IDF1": identity["IDF1"] if truth_boxes or tracked_boxes else None,
        "IDP": identity["IDP"] if tracked_boxes else None,
        "IDR": identity["IDR"] if truth_boxes else None,
        "ID_switches": int(clear["IDSW"]),
        "fragmentations": int(clear["Frag"]),
        "TP": int(clear["CLR_TP"]),
        "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]),
        "mostly_tracked": int(clear["MT"]),
        "mostly_lost": int(clear["ML"]),
        "gt_people": len(gt_people),
        "unique_people": len(people),
        "unique_people_error": len(people) - len(gt_people),
        "confirmed_tracks": len(seen),
        "occupancy_mae": float(np.abs(err).mean()),
        "occupancy_bias": float(err.mean()),
        "elapsed_s": round(run.elapsed_s, 3),
        "fps": round(len(run.frames) / run.elapsed_s, 2) if run.elapsed_s > 0 else None,
        "tracking": {k: v for k, v in run.tracking.items() if k not in ("per_frame", "people")},
        "detectors": run.detectors,
    }
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in report.items()}
