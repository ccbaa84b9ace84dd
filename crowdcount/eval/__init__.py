"""Accuracy: ground-truth readers (MOTChallenge, dlib imglab XML), matching and metrics (count MAE / RMSE /
bias, precision / recall / F1, AP50), and runners that produce detections to evaluate.

It may import the analyzer and the detectors, never the CLI or AWS layers.
"""

from __future__ import annotations

from crowdcount.analyzer.counts import smooth_counts
from crowdcount.eval.groundtruth import (
    GroundTruth,
    GroundTruthFrame,
    IgnoreRegion,
    apply_ignore_regions,
    gt_format,
    parse_frames,
    parse_size,
    read_imglab,
    read_mot,
)
from crowdcount.eval.metrics import (
    EvalReport,
    FrameMatch,
    average_precision,
    evaluate,
    iou_matrix,
    match_frame,
    summarize_matches,
    threshold_sweep,
)
from crowdcount.eval.runner import (
    SCORE_FLOOR,
    DetectionRun,
    count_window,
    detect_images,
    detect_video,
    detections_from_document,
    evaluate_run,
    load_document,
    match_run,
)

__all__ = [
    "SCORE_FLOOR",
    "DetectionRun",
    "EvalReport",
    "FrameMatch",
    "GroundTruth",
    "GroundTruthFrame",
    "IgnoreRegion",
    "apply_ignore_regions",
    "average_precision",
    "count_window",
    "detect_images",
    "detect_video",
    "detections_from_document",
    "evaluate",
    "evaluate_run",
    "gt_format",
    "iou_matrix",
    "load_document",
    "match_frame",
    "match_run",
    "parse_frames",
    "parse_size",
    "read_imglab",
    "read_mot",
    "smooth_counts",
    "summarize_matches",
    "threshold_sweep",
]
