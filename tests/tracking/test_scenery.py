"""The scenery filter: weak static boxes that match the background are dropped; people and moving cameras are not."""

from __future__ import annotations

import numpy as np
import pytest

from crowdcount.analyzer.scenery import SceneryFilter, SceneryModel

CONE = np.array([[40, 60, 60, 100]], np.float32)


def scene(t: int, person_x: int | None = None, shift: int = 0) -> np.ndarray:
    """A 160x120 grey plaza with an orange cone, and optionally a dark person at ``person_x``."""
    rgb = np.full((120, 160, 3), 120, np.uint8)
    rgb[:, ::16] = 90  # texture, so that a moving camera changes many pixels
    rgb[60:100, 40:60] = (230, 120, 30)
    if person_x is not None:
        rgb[50:110, person_x : person_x + 15] = 20
    return np.roll(rgb, shift, axis=1) if shift else rgb


def run(model: SceneryModel, seconds: float, fps: float, boxes, scores, person=None, shift=None) -> list[list[bool]]:
    out = []
    for i in range(int(seconds * fps)):
        x = None if person is None else person(i)
        img = scene(i, x, 0 if shift is None else shift(i))
        b = np.asarray(boxes(i) if callable(boxes) else boxes, np.float32).reshape(-1, 4)
        out.append(model.update(img, b, np.asarray(scores, np.float32)[: len(b)], i / fps).tolist())
    return out


def test_a_weak_static_box_on_the_background_is_scenery_after_static_s() -> None:
    masks = run(SceneryModel(static_s=5.0), 10, 10, CONE, [0.3])
    assert not any(m[0] for m in masks[:50])  # not before 5 s
    assert all(m[0] for m in masks[51:])


def test_a_confident_static_box_is_kept() -> None:
    masks = run(SceneryModel(static_s=5.0, keep_score=0.5), 10, 10, CONE, [0.8])
    assert not any(m[0] for m in masks)


def test_a_person_standing_still_for_a_while_is_kept() -> None:
    # someone walks in at 2 s and stands still on a spot for 6 s at a low score: the box is static,
    # but its pixels are not the background's (learnt over 20 s)
    def person(i: int) -> int:
        return min(100, 20 + 4 * i) if i >= 20 else 0

    def boxes(i: int) -> list[list[float]]:
        x = person(i)
        return [[x, 50, x + 15, 110]] if i >= 20 else []

    masks = run(SceneryModel(static_s=5.0), 8, 10, boxes, [0.3], person=lambda i: person(i) if i >= 20 else None)
    assert not any(m and m[0] for m in masks)


def test_nothing_is_suppressed_while_the_camera_moves() -> None:
    model = SceneryModel(static_s=2.0)
    masks = run(model, 6, 10, CONE, [0.3], shift=lambda i: 3 * i)
    assert not any(m[0] for m in masks)
    assert model.moving_frames > 0


def test_processor_marks_boxes_and_reports_places() -> None:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.processors import BELOW_THRESHOLD
    from crowdcount.analyzer.video import VideoInfo
    from crowdcount.detectors import Detections

    proc = SceneryFilter(static_s=1.0)
    proc.start(VideoInfo("x.mp4", 160, 120, 10.0, 30, "h264", 0), 1.0)
    marked = []
    for i in range(30):
        dets = Detections(CONE.copy(), np.array([0.3], np.float32), np.array([1], np.int32))
        frame = FrameResult(i + 1, i * 100.0, {"Human": dets})
        proc.process(frame, scene(i))
        marked.append(bool(frame.detections["Human"].data.get(BELOW_THRESHOLD, [False])[0]))
    assert marked[:10] == [False] * 10 and all(marked[12:])
    section = proc.finish()
    assert section["boxes_suppressed"] == sum(marked)
    assert section["places"][0]["box"] == [40.0, 60.0, 60.0, 100.0]
    assert proc.describe()["static_s"] == 1.0


@pytest.mark.parametrize("bad", [{"static_s": 0}, {"keep_score": 1.5}, {"background_s": "x"}, {"max_foreground": -1}])
def test_bad_settings(bad: dict) -> None:
    with pytest.raises(ValueError):
        SceneryFilter(**bad)
