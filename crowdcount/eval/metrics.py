"""Detection and counting metrics: IoU matching, count MAE / RMSE / bias, precision / recall / F1, AP50.

Matching is greedy in descending score order (as in PASCAL VOC and COCO): each detection takes the unmatched,
not-ignored ground-truth box it overlaps most, if that IoU reaches the threshold (a true positive); otherwise
it is *ignored* when it overlaps an ignored box by the threshold or its bottom-centre point lies in an ignore
region, else it is a false positive. Because the matching is greedy by score, the matches of the detections
above any threshold do not depend on those below it, so one matching serves every threshold.

Counts: a frame's predicted count is its detections at or above the threshold that are not ignored; its true
count is its boxes that are not ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

# box geometry lives with Detections (the scenery filter uses it too); crowdcount.eval re-exports it
from crowdcount.detectors.base import iou_matrix as iou_matrix
from crowdcount.eval.groundtruth import GroundTruthFrame, IgnoreRegion, in_ignore_regions


@dataclass(frozen=True)
class FrameMatch:
    """The matching of one frame: per detection (sorted by descending score) its score and whether it is a
    true positive or ignored; ``gt_count`` people annotated (not ignored)."""

    key: int | str
    scores: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    gt_count: int

    def count(self, threshold: float) -> int:
        """Detections at or above ``threshold`` that are not ignored."""
        return int(((self.scores >= threshold) & ~self.ignored).sum())


def match_frame(
    xyxy: np.ndarray,
    scores: np.ndarray,
    gt: GroundTruthFrame,
    iou_threshold: float = 0.5,
    ignore_regions: Sequence[IgnoreRegion] = (),
    key: int | str = 0,
) -> FrameMatch:
    """Match one frame's detections to its ground truth (see the module docstring)."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    xyxy, scores = xyxy[order], scores[order]
    gt_ignore = gt.ignore | in_ignore_regions(gt.xyxy, ignore_regions)
    ious = iou_matrix(xyxy, gt.xyxy)
    taken = np.zeros(len(gt), bool)
    tp = np.zeros(len(scores), bool)
    ignored = np.zeros(len(scores), bool)
    in_region = in_ignore_regions(xyxy, ignore_regions)
    for d in range(len(scores)):
        if len(gt):
            candidates = np.where(~gt_ignore & ~taken, ious[d], -1.0)
            best = int(np.argmax(candidates))
            if candidates[best] >= iou_threshold:
                taken[best] = True
                tp[d] = True
                continue
            if np.any(gt_ignore & (ious[d] >= iou_threshold)):
                ignored[d] = True
                continue
        ignored[d] = bool(in_region[d])
    return FrameMatch(key, scores, tp, ignored, int((~gt_ignore).sum()))


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """PASCAL VOC (2010+) all-point interpolated average precision of ranked detections (``nan`` without
    ground truth)."""
    if num_gt <= 0:
        return math.nan
    scores = np.asarray(scores, np.float64)
    tp = np.asarray(tp, bool)
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / num_gt
    precision = ctp / np.maximum(ctp + cfp, 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    changes = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass
class EvalReport:
    """Every metric of one evaluation. ``nan`` where undefined (e.g. precision without detections).

    ``ap`` is the average precision at ``iou_threshold`` (AP50 at the default 0.5) over every score present.
    """

    frames: int
    threshold: float
    iou_threshold: float
    gt_total: int
    mean_gt_count: float
    mean_count: float
    count_mae: float
    count_rmse: float
    count_bias: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    ap: float
    per_frame: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, per_frame: bool = True) -> dict[str, Any]:
        """JSON-ready (``nan`` becomes ``None``, floats rounded)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float):
                return None if math.isnan(value) else round(value, 4)
            return value

        out = {k: clean(v) for k, v in vars(self).items() if k not in ("per_frame", "extra")}
        out.update(self.extra)
        if per_frame:
            out["per_frame"] = self.per_frame
        return out


def summarize_matches(
    matches: Sequence[FrameMatch],
    threshold: float,
    iou_threshold: float = 0.5,
    counts: npt.ArrayLike | None = None,
) -> EvalReport:
    """Aggregate frame matchings into an :class:`EvalReport` at score ``threshold``.

    ``counts`` replaces the per-frame predicted counts (e.g. temporally smoothed ones) for the count metrics.
    """
    gt = np.array([m.gt_count for m in matches], np.float64)
    pred = np.array([m.count(threshold) for m in matches], np.float64)
    if counts is not None:
        pred_counts = np.asarray(counts, np.float64)
        if pred_counts.shape != (len(matches),):
            raise ValueError(f"{pred_counts.size} counts for {len(matches)} frames")
    else:
        pred_counts = pred
    err = pred_counts - gt
    tp = sum(int((m.tp & (m.scores >= threshold)).sum()) for m in matches)
    fp = sum(int((~m.tp & ~m.ignored & (m.scores >= threshold)).sum()) for m in matches)
    total = int(gt.sum())
    fn = total - tp
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, total)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    keep = [~m.ignored for m in matches]
    all_scores = np.concatenate([m.scores[k] for m, k in zip(matches, keep, strict=True)] or [np.zeros(0)])
    all_tp = np.concatenate([m.tp[k] for m, k in zip(matches, keep, strict=True)] or [np.zeros(0, bool)])
    n = len(matches)
    return EvalReport(
        frames=n,
        threshold=float(threshold),
        iou_threshold=float(iou_threshold),
        gt_total=total,
        mean_gt_count=float(gt.mean()) if n else math.nan,
        mean_count=float(pred_counts.mean()) if n else math.nan,
        count_mae=float(np.abs(err).mean()) if n else math.nan,
        count_rmse=float(np.sqrt((err**2).mean())) if n else math.nan,
        count_bias=float(err.mean()) if n else math.nan,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        ap=average_precision(all_scores, all_tp, total),
        per_frame=[
            {"frame": m.key, "gt": int(g), "count": round(float(c), 3)}
            for m, g, c in zip(matches, gt, pred_counts, strict=True)
        ],
    )


def evaluate(
    detections: Iterable[tuple[np.ndarray, np.ndarray]],
    ground_truth: Iterable[GroundTruthFrame],
    threshold: float,
    iou_threshold: float = 0.5,
    ignore_regions: Sequence[IgnoreRegion] = (),
    keys: Sequence[int | str] | None = None,
) -> EvalReport:
    """Evaluate per-frame ``(xyxy, scores)`` detections against per-frame ground truth, in the same order."""
    dets = list(detections)
    gts = list(ground_truth)
    if len(dets) != len(gts):
        raise ValueError(f"{len(dets)} frames of detections for {len(gts)} frames of ground truth")
    keys = list(keys) if keys is not None else list(range(1, len(gts) + 1))
    matches = [
        match_frame(xyxy, scores, gt, iou_threshold, ignore_regions, key)
        for (xyxy, scores), gt, key in zip(dets, gts, keys, strict=True)
    ]
    return summarize_matches(matches, threshold, iou_threshold)


def threshold_sweep(
    matches: Sequence[FrameMatch], thresholds: Iterable[float], iou_threshold: float = 0.5
) -> list[EvalReport]:
    """Reports at several thresholds (for calibration on data set aside for it, never on the test frames)."""
    return [summarize_matches(matches, t, iou_threshold) for t in thresholds]
