"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crowdcount.eval import (
    GroundTruthFrame,
    IgnoreRegion,
    average_precision,
    evaluate,
    iou_matrix,
    match_frame,
)


def gt(*boxes: list[float], ignore: list[bool] | None = None) -> GroundTruthFrame:
    return GroundTruthFrame(np.array(boxes, np.float32).reshape(-1, 4), ignore or [False] * len(boxes))


def test_iou_matrix_exact() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 20]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    ious = iou_matrix(a, b)
    assert ious[0, 0] == pytest.approx(1.0)
    assert ious[0, 1] == pytest.approx(50 / 150)
    assert ious[0, 2] == 0.0
    assert ious[1, 0] == pytest.approx(100 / 200)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


# Two frames. Frame 1: people A, B; detections d1 (0.9, on A), d2 (0.8, on A again: a duplicate), d3 (0.3, on B).
# Frame 2: person C; detections d4 (0.6, IoU 0.75 with C) and d5 (0.7, on nobody).
# Ranked: 0.9 TP, 0.8 FP, 0.7 FP, 0.6 TP, 0.3 TP with 3 people: precision 1, 1/2, 1/3, 1/2, 3/5 at
# recall 1/3, 1/3, 1/3, 2/3, 1 -> interpolated AP = (1 + 0.6 + 0.6) / 3.
FRAME1 = (np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]]), np.array([0.9, 0.8, 0.3]))
FRAME2 = (np.array([[0, 5, 10, 20], [50, 50, 60, 60]]), np.array([0.6, 0.7]))
GT1 = gt([0, 0, 10, 10], [20, 0, 30, 10])
GT2 = gt([0, 0, 10, 20])


def test_average_precision_voc_all_points() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3])
    tp = np.array([True, False, False, True, True])
    assert average_precision(scores, tp, 3) == pytest.approx(2.2 / 3)
    assert average_precision(scores[::-1], tp[::-1], 3) == pytest.approx(2.2 / 3)  # order of input is irrelevant
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert math.isnan(average_precision(scores, tp, 0))
    assert average_precision(np.array([0.5]), np.array([True]), 1) == pytest.approx(1.0)


def test_evaluate_exact_values_at_threshold_0_5() -> None:
    report = evaluate([FRAME1, FRAME2], [GT1, GT2], threshold=0.5)
    # counts at 0.5: frame 1 -> 2 (truth 2), frame 2 -> 2 (truth 1): errors 0, +1
    assert report.frames == 2
    assert report.gt_total == 3
    assert report.count_mae == pytest.approx(0.5)
    assert report.count_rmse == pytest.approx(math.sqrt(0.5))
    assert report.count_bias == pytest.approx(0.5)
    assert (report.tp, report.fp, report.fn) == (2, 2, 1)
    assert report.precision == pytest.approx(0.5)
    assert report.recall == pytest.approx(2 / 3)
    assert report.f1 == pytest.approx(4 / 7)
    assert report.ap == pytest.approx(2.2 / 3)
    assert [r["count"] for r in report.per_frame] == [2, 2]


def test_evaluate_exact_values_at_threshold_0_25() -> None:
    report = evaluate([FRAME1, FRAME2], [GT1, GT2], threshold=0.25)
    # counts 3 (truth 2) and 2 (truth 1): errors +1, +1
    assert report.count_mae == pytest.approx(1.0)
    assert report.count_bias == pytest.approx(1.0)
    assert (report.tp, report.fp, report.fn) == (3, 2, 0)
    assert report.precision == pytest.approx(0.6)
    assert report.recall == pytest.approx(1.0)
    assert report.ap == pytest.approx(2.2 / 3)  # AP does not depend on the threshold


def test_greedy_matching_takes_highest_score_first() -> None:
    # Both detections overlap the one person; the higher-scored one gets it even though the other overlaps more.
    dets = np.array([[0, 0, 10, 9], [0, 0, 10, 10]])
    m = match_frame(dets, np.array([0.9, 0.4]), gt([0, 0, 10, 10]))
    assert m.scores.tolist() == pytest.approx([0.9, 0.4])
    assert m.tp.tolist() == [True, False]


def test_iou_threshold_is_inclusive() -> None:
    m = match_frame(np.array([[0, 0, 10, 10]]), np.array([0.9]), gt([0, 0, 10, 20]))  # IoU exactly 0.5
    assert m.tp.tolist() == [True]
    m = match_frame(np.array([[0, 0, 10, 10]]), np.array([0.9]), gt([0, 0, 10, 20]), iou_threshold=0.6)
    assert m.tp.tolist() == [False]


def test_ignore_region_drops_detections_and_people_by_their_feet() -> None:
    region = IgnoreRegion.parse("0,0,100,70")
    dets = np.array([[10, 10, 20, 60], [10, 50, 20, 90], [40, 100, 50, 150]])  # feet at y 60 (ignored), 90, 150
    truth = gt([10, 20, 20, 65], [40, 100, 50, 150])  # the first person's feet are in the region too
    report = evaluate([(dets, np.array([0.9, 0.8, 0.7]))], [truth], threshold=0.5, ignore_regions=[region])
    assert report.gt_total == 1
    assert report.per_frame[0]["count"] == 2
    assert (report.tp, report.fp, report.fn) == (1, 1, 0)
    # AP ranks the non-ignored detections only: FP 0.8, TP 0.7 -> precision 1/2 at recall 1
    assert report.ap == pytest.approx(0.5)


def test_ignored_ground_truth_absorbs_detections() -> None:
    truth = gt([0, 0, 10, 10], [50, 50, 60, 60], ignore=[False, True])
    dets = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [51, 50, 61, 60]])
    report = evaluate([(dets, np.array([0.9, 0.8, 0.7]))], [truth], threshold=0.5)
    assert report.gt_total == 1
    assert report.per_frame[0]["count"] == 1
    assert (report.tp, report.fp, report.fn) == (1, 0, 0)
    assert report.ap == pytest.approx(1.0)


def test_empty_frames() -> None:
    report = evaluate([(np.zeros((0, 4)), np.zeros(0))], [GroundTruthFrame.empty()], threshold=0.5)
    assert report.count_mae == 0.0
    assert math.isnan(report.precision) and math.isnan(report.recall) and math.isnan(report.ap)
    d = report.to_dict()
    assert d["precision"] is None and d["ap"] is None
    report = evaluate([(np.array([[0, 0, 5, 5]]), np.array([0.9]))], [GroundTruthFrame.empty()], threshold=0.5)
    assert (report.tp, report.fp, report.fn, report.count_bias) == (0, 1, 0, 1.0)
    assert report.precision == 0.0


def test_ignore_region_parsing() -> None:
    from crowdcount.errors import ConfigError

    assert str(IgnoreRegion.parse("0, 0, 480, 70")) == "0,0,480,70"
    for bad in ("0,0,480", "a,b,c,d", "10,0,5,70"):
        with pytest.raises(ConfigError):
            IgnoreRegion.parse(bad)


def test_smooth_counts_running_median() -> None:
    from crowdcount.eval import smooth_counts

    counts = [5, 5, 2, 5, 5, 9, 5]
    assert smooth_counts(counts, 3).tolist() == [5, 5, 5, 5, 5, 5, 5]
    assert smooth_counts(counts, 1).tolist() == counts
    assert smooth_counts([1, 3], 5).tolist() == [1, 3]  # median of 1,1,1,3,3 and 1,1,3,3,3
    with pytest.raises(ValueError):
        smooth_counts(counts, 4)
