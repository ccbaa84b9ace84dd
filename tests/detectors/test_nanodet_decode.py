"""NanoDet-g decoding, input sizing and NMS on synthetic head outputs (no model, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from crowdcount.detectors import build_detector
from crowdcount.detectors import nanodet as nd
from crowdcount.errors import DetectorError


def test_input_size() -> None:
    assert nd.input_size(480, 360, 416, keep_aspect=False) == (416, 416)
    assert nd.input_size(480, 360, 416) == (480, 352)  # 4:3, about 416 x 416 pixels
    assert nd.input_size(1920, 1080, 416) == (544, 320)
    assert nd.input_size(360, 480, 320) == (288, 384)
    with pytest.raises(ValueError):
        nd.input_size(480, 360, 400)


def test_anchor_grid_order_and_centres() -> None:
    centres, strides = nd.anchor_grid(64, 32)
    # stride 8: 4 x 8 cells, stride 16: 2 x 4, stride 32: 1 x 2
    assert len(centres) == 32 + 8 + 2
    assert centres[0].tolist() == [4, 4] and centres[1].tolist() == [12, 4]  # row-major
    assert centres[8].tolist() == [4, 12]  # second row
    assert centres[32].tolist() == [8, 8] and strides[32] == 16
    assert centres[-1].tolist() == [48, 16] and strides[-1] == 32


def peaked(bins: list[int]) -> np.ndarray:
    """Box logits whose softmax puts (almost) all mass on one bin per side."""
    reg = np.full((4, nd.REG_MAX + 1), -50.0, np.float32)
    for side, b in enumerate(bins):
        reg[side, b] = 50.0
    return reg.reshape(-1)


def test_distances_are_softmax_expectations() -> None:
    uniform = np.zeros((1, 44), np.float32)
    assert nd.distances(uniform)[0].tolist() == pytest.approx([5, 5, 5, 5])
    assert nd.distances(peaked([1, 2, 3, 10])[None])[0].tolist() == pytest.approx([1, 2, 3, 10])
    two = np.full((4, 11), -50.0, np.float32)
    two[:, 2] = two[:, 4] = 0.0  # half on bin 2, half on bin 4
    assert nd.distances(two.reshape(1, -1))[0].tolist() == pytest.approx([3, 3, 3, 3])


def test_decode_one_box() -> None:
    width, height = 64, 32
    n = len(nd.anchor_grid(width, height)[0])
    cls = np.zeros((n, nd.NUM_CLASSES), np.float32)
    reg = np.zeros((n, 44), np.float32)
    cell = 32 + 5  # stride 16, row 1, col 1: centre (24, 24)
    cls[cell, nd.PERSON] = 0.9
    cls[3, 1] = 0.95  # another class: ignored
    reg[cell] = peaked([1, 1, 2, 3])  # 16, 16, 32, 48 pixels
    boxes, scores = nd.decode(cls, reg, width, height, 0.5)
    assert scores.tolist() == pytest.approx([0.9])
    assert boxes.tolist() == [[8, 8, 56, 32]]  # right/bottom clipped to the input
    assert len(nd.decode(cls, reg, width, height, 0.95)[0]) == 0


def test_nms() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.7], np.float32)
    assert nd.nms(boxes, scores, 0.6).tolist() == [1, 2, 3]  # box 0 overlaps box 1 by IoU 0.82
    assert nd.nms(boxes, scores, 0.9).tolist() == [1, 2, 3, 0]
    assert nd.nms(boxes, scores, 0.6, max_detections=2).tolist() == [1, 2]
    assert nd.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def test_human_detector_presets_and_validation() -> None:
    det = build_detector("human")
    assert det.preset == "accurate" and det.model == "omz0203" and det.min_detection_score == 0.25
    assert det.arguments()["max_pixels"] == 1920 * 1080 and det.arguments()["upscale"] == 1.5
    assert det.arguments()["zoom"] is True
    assert det.default_model_info()["licence"] == "Apache-2.0"
    assert det.model_info()["name"] == "person-detection-0203"
    det = build_detector("human", {"preset": "nanodet"})
    assert det.model == "nanodet" and det.arguments()["input_size"] == 448 and det.arguments()["nms_iou"] == 0.6
    assert det.arguments()["keep_aspect"] is True and det.min_detection_score == 0.37
    assert det.network_input(480, 360) == (512, 384)
    assert det.network_input(1920, 1080) == (608, 320)
    det = build_detector("human", {"preset": "nanodet", "input_size": 320, "keep_aspect": True})
    assert det.network_input(480, 360) == (384, 288)
    fast = build_detector("human", {"preset": "fast"})
    assert fast.model == "nanodet" and fast.network_input(480, 360) == (320, 320)
    assert fast.min_detection_score == 0.44 and det.min_detection_score == 0.37
    ssd = build_detector("human", {"preset": "ssdlite"})
    assert ssd.model == "ssdlite" and ssd.model_info()["licence"] == "MIT" and ssd.min_detection_score == 0.15
    assert build_detector("human", {"preset": "ssdlite", "min_detection_score": 0.3}).min_detection_score == 0.3
    assert build_detector("human", {"max_pixels": 640 * 480}).max_pixels == 640 * 480
    assert build_detector("human", {"upscale": 1}).upscale == 1.0
    for bad in (
        {"preset": "best"},
        {"input_size": 320},
        {"preset": "nanodet", "input_size": 300},
        {"preset": "nanodet", "nms_iou": 0},
        {"preset": "nanodet", "keep_aspect": "yes"},
        {"preset": "nanodet", "runtime": "onnx"},
        {"runtime": "tflite"},
        {"max_pixels": 10},
        {"max_pixels": True},
        {"upscale": 0.1},
        {"upscale": "2"},
    ):
        with pytest.raises(DetectorError):
            build_detector("human", bad)


def test_person_detection_input_size_follows_the_frame() -> None:
    from crowdcount.detectors import omz_person

    assert omz_person.input_size(480, 360) == (480, 352)
    assert omz_person.input_size(960, 540) == (960, 544)
    assert omz_person.input_size(1920, 1080) == (1920, 1088)
    assert omz_person.input_size(1920, 1080, max_pixels=1280 * 720) == (1280, 704)
    assert omz_person.input_size(640, 480) == (640, 480)
    # the default preset's 1.5 times upscaling, within the cap
    assert omz_person.input_size(480, 360, upscale=1.5) == (704, 544)
    assert omz_person.input_size(960, 540, upscale=1.5) == (1440, 800)
    assert omz_person.input_size(1920, 1080, upscale=1.5) == (1920, 1088)
    assert omz_person.input_size(160, 120) == (320, 256)  # small frames are upscaled
    assert omz_person.input_size(1920, 1080, max_pixels=864 * 480) == (864, 480)
    with pytest.raises(ValueError):
        omz_person.input_size(0, 10)


def reference_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """The textbook greedy loop, to check OpenCV's NMSBoxes against."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = w * h
            union = (
                (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
                + (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
                - inter
            )
            if inter / union <= iou_threshold:
                rest.append(j)
        order = rest
    return keep


@pytest.mark.parametrize("iou", [0.3, 0.5, 0.6, 0.9])
def test_nms_matches_the_greedy_loop_on_random_boxes(iou: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(1, 120))
        corner = rng.uniform(0, 300, (n, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(4, 60, (n, 2))], axis=1).astype(np.float32)
        scores = rng.uniform(0.05, 1, n).astype(np.float32)
        assert nd.nms(boxes, scores, iou).tolist() == reference_nms(boxes, scores, iou)
