"""Frames of several live sources share the detectors: each source is a scene of its own, detected apart, so
that a detector that learns from frames (the human detector's zoom decision) keeps what it learnt per source."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from crowdcount.analyzer.runner import FrameBatchRunner
from crowdcount.detectors import Detections, Detector
from crowdcount.detectors.human import HumanDetector
from crowdcount.live.pipeline import LiveFrame


class SceneRecorder(Detector):
    """Records which scene each batch was detected in."""

    category = "Human"
    name = "scene-recorder"

    def __init__(self) -> None:
        super().__init__(min_detection_score=0.5, max_batch_size=8)
        self.scene: Hashable | None = None
        self.calls: list[tuple[Hashable | None, int]] = []

    def use_scene(self, scene: Hashable | None) -> None:
        self.scene = scene

    def _load(self) -> None:
        return None

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        self.calls.append((self.scene, len(frames)))
        return [Detections.empty() for _ in frames]

    def model_info(self) -> dict[str, Any]:
        return {"name": "none"}


def test_frames_of_two_sources_of_one_size_are_detected_apart_in_their_scene() -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    frames = [LiveFrame(1, 0.0, image, "gate"), LiveFrame(1, 0.0, image, "hall"), LiveFrame(2, 100.0, image, "gate")]
    detector = SceneRecorder()
    results = FrameBatchRunner([detector]).detect(frames)
    assert detector.calls == [("gate", 2), ("hall", 1)]
    assert [r.index for r in results] == [1, 1, 2]  # in the order given
    FrameBatchRunner([detector]).detect([LiveFrame(3, 0.0, image)])  # a video's frames: no scene
    assert detector.calls[-1] == (None, 1)


def test_the_human_detector_keeps_a_zoom_decision_per_scene() -> None:
    detector = HumanDetector(zoom=True)  # planning needs no model
    detector.use_scene("gate")
    gate = detector._zoom_for(960, 540, (1440, 800))
    assert gate is not None
    gate[0].on = True
    detector.use_scene("hall")
    hall = detector._zoom_for(960, 540, (1440, 800))
    assert hall is not None and hall is not gate and not hall[0].on  # the hall camera decides for itself
    detector.use_scene("gate")
    assert detector._zoom_for(960, 540, (1440, 800)) is gate and gate[0].on
    detector.reset()
    assert detector._zoom is None and not detector._zooms
