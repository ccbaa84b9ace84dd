"""Runners: detections from a video's annotated frames only (a stub detector: no model), and the CLI on real
footage with the real default model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.detectors import Detections, Detector
from crowdcount.eval import detect_video, evaluate_run, read_mot


class BoxEveryFrame(Detector):
    """Reports one fixed box at score 0.3 and one at 0.9 in every frame, and remembers what it saw."""

    category = "Human"
    name = "stub"

    def __init__(self) -> None:
        super().__init__(min_detection_score=0.5, max_batch_size=3)
        self.seen = 0

    def _load(self) -> None:
        pass

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        self.seen += len(frames)
        boxes = np.array([[0, 0, 10, 10], [100, 100, 120, 160]], np.float32)
        return [Detections(boxes, np.array([0.3, 0.9]), np.ones(2)) for _ in frames]

    def model_info(self) -> dict[str, Any]:
        return {"name": "stub"}


def test_detect_video_runs_only_annotated_frames_at_the_score_floor(shared_data: Path) -> None:
    detector = BoxEveryFrame()
    run = detect_video(shared_data / "pets09" / "vtest.avi", detector, [2, 3, 5, 9])
    assert sorted(run.detections) == [2, 3, 5, 9] and detector.seen == 4
    assert run.threshold == 0.5 and run.score_floor == 0.05
    assert detector.min_detection_score == 0.5  # restored
    assert [len(s) for _, s in run.detections.values()] == [2, 2, 2, 2]  # the 0.3 box is kept for AP
    gt = read_mot(shared_data / "pets09" / "gt_frames001-124.txt", video_size=(480, 360))
    report = evaluate_run(run, gt, [2, 3, 5, 9])
    assert report.per_frame[0]["count"] == 1  # counted at the detector's threshold, 0.5
    assert report.extra["unit"] == "frame" and report.extra["gt_scale"] == 0.625


@pytest.mark.real_model
def test_eval_cli_on_video_with_the_fast_preset(shared_data: Path) -> None:
    pets = shared_data / "pets09"
    args = ["eval", str(pets / "vtest.avi"), "--gt", str(pets / "gt_frames001-124.txt"), "--frames", "1-10"]
    args += ["--ignore", "0,0,480,70", "--detector-arg", "human.preset=fast", "--min-score", "0.45", "--json"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    metrics = json.loads(out.output[out.output.index("{") :])
    assert metrics["frames"] == 10 and metrics["threshold"] == 0.45
    assert metrics["count_mae"] <= 1.5 and metrics["ap"] >= 0.6
    assert metrics["detectors"][0]["arguments"]["input_size"] == 320


def test_the_scenery_check_drops_only_a_human_detector_s_boxes(tmp_path: Path) -> None:
    """As ``analyze``: the scenery filter follows the tracked (Human) category; faces are never scenery."""
    from crowdcount.eval.runner import detect_video

    from conftest import FaceSquareDetector, SquareDetector, write_video

    class EverythingIsScenery:
        def judge(self, rgb: np.ndarray, dets: Detections, strong: np.ndarray, now_s: float) -> np.ndarray:
            return np.ones(len(dets), bool)

    video = write_video(tmp_path / "v.mp4", 4)
    kept = {}
    for detector in (SquareDetector(), FaceSquareDetector()):
        run = detect_video(video, detector, [2, 3, 4], scenery=EverythingIsScenery())  # type: ignore[arg-type]
        kept[detector.category] = [len(run.detections[k][0]) for k in (2, 3, 4)]
    assert kept == {"Human": [0, 0, 0], "Face": [1, 2, 3]}


def test_the_count_window_spans_the_same_seconds_however_sparse_the_ground_truth() -> None:
    from crowdcount.eval.runner import DetectionRun, count_window

    def run_on(frames: list[int]) -> DetectionRun:
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        return DetectionRun({k: empty for k in frames}, "v.mp4", "Human", 0.5, 0.05, 160, 120)

    every = list(range(1, 101))
    assert count_window(1.0, 10.0, 1.0, run_on(every), every) == 11  # as analyze at frame ratio 1
    tenth = list(range(1, 101, 10))
    assert count_window(1.0, 10.0, 1.0, run_on(tenth), tenth) == 1  # one annotated frame a second: no smoothing
    assert count_window(5.0, 10.0, 1.0, run_on(tenth), tenth) == 5
    analysed = [1 + int(i * 3.75) for i in range(80)]  # a result file at 8 of 30 frames a second
    assert count_window(1.0, 30.0, 0.2667, run_on(analysed), every) == 9  # the window analyze wrote it with
    assert count_window(1.0, 30.0, 0.2667, run_on(analysed), every[::30]) == 1  # ground truth once a second
    assert count_window(1.0, 30.0, 1.0, run_on([1]), [1]) == 1
