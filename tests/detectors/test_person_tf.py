"""person-detection-0203 under TensorFlow (crowdcount/detectors/person_tf.py): the numpy post-processing on
synthetic head maps, load errors, and the shipped TF files against the OpenVINO IR on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crowdcount.detectors import omz_person
from crowdcount.detectors.person_tf import PersonDetection0203TF, decode_deltas, level_anchors, postprocess
from crowdcount.errors import DetectorError

#: The IR's constants for two levels (the shipped model.json has all five).
POST = {
    "levels": [
        {
            "stride": 8,
            "anchors": [[-45.25, -22.625, 45.25, 22.625], [-32, -32, 32, 32], [-22.625, -45.25, 22.625, 45.25]],
        },
        {"stride": 16, "anchors": [[-90.5, -45.25, 90.5, 45.25], [-64, -64, 64, 64], [-45.25, -90.5, 45.25, 90.5]]},
    ],
    "stds": [0.1, 0.1, 0.2, 0.2],
    "means": [0.0, 0.0, 0.0, 0.0],
    "wh_clamp": 4.135,
    "pre_nms_top_k": 1000,
    "max_boxes": 100,
    "iou_threshold": 0.6,
    "score_threshold": 0.05,
}


def empty_maps(width: int = 128, height: int = 64) -> list[np.ndarray]:
    """Raw maps that score nothing: logits -20 (sigmoid ~ 2e-9), zero deltas."""
    maps = []
    for level in POST["levels"]:
        raw = np.zeros((1, height // level["stride"], width // level["stride"], 18), np.float32)
        raw[..., :6] = -20.0
        maps.append(raw)
    return maps


def test_anchors_are_cell_corners_in_map_order() -> None:
    anchors = level_anchors(np.array(POST["levels"][0]["anchors"], np.float32), 8, rows=2, cols=3)
    assert anchors.shape == (18, 4)
    # cell (row 1, col 2), anchor 1 (square): index (1 * 3 + 2) * 3 + 1, centre (16, 8)
    np.testing.assert_array_equal(anchors[(1 * 3 + 2) * 3 + 1], [16 - 32, 8 - 32, 16 + 32, 8 + 32])


def test_zero_deltas_give_the_anchor_and_deltas_move_it() -> None:
    anchors = np.array([[10, 20, 50, 100], [10, 20, 50, 100]], np.float32)
    deltas = np.array([[0, 0, 0, 0], [1, -1, np.log(2), 0]], np.float32)  # x += 0.1 w, y -= 0.1 h, w *= 2 ** 0.2
    boxes = decode_deltas(anchors, deltas, POST, width=200, height=200)
    np.testing.assert_allclose(boxes[0], [10, 20, 50, 100])
    w = 40 * 2**0.2
    np.testing.assert_allclose(boxes[1], [34 - w / 2, 12, 34 + w / 2, 92], rtol=1e-5)


def test_decoded_boxes_are_clipped_and_the_size_clamped() -> None:
    anchors = np.array([[-10, -10, 30, 30]], np.float32)
    boxes = decode_deltas(anchors, np.array([[0, 0, 100, 100]], np.float32), POST, width=64, height=48)
    np.testing.assert_allclose(boxes[0], [0, 0, 64, 48])


def test_postprocess_scores_cls_times_centerness_and_suppresses_overlaps() -> None:
    maps = empty_maps()
    # stride 8, cell (row 3, col 5), centre (40, 24): the square anchor, cls logit 2, centerness 1; the same
    # anchor of the next cell scores less and overlaps it by IoU 0.78: suppressed
    maps[0][0, 3, 5, 1], maps[0][0, 3, 5, 4] = 2.0, 1.0
    maps[0][0, 3, 6, 1], maps[0][0, 3, 6, 4] = 1.5, 1.0
    # stride 16, cell (row 1, col 6), centre (96, 16): another person (IoU 0.30 with the first)
    maps[1][0, 1, 6, 1], maps[1][0, 1, 6, 4] = 3.0, 3.0
    out = postprocess(maps, 128, 64, POST)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert out.shape == (2, 5)
    np.testing.assert_allclose(out[:, 4], [sig(3) * sig(3), sig(2) * sig(1)], rtol=1e-6)
    np.testing.assert_allclose(out[0, :4], [32, 0, 128, 64])  # [32, -48, 160, 80] clipped to 128x64
    np.testing.assert_allclose(out[1, :4], [8, 0, 72, 56])  # [8, -8, 72, 56] clipped


def test_postprocess_max_boxes_and_empty() -> None:
    assert postprocess(empty_maps(), 128, 64, POST).shape == (0, 5)
    maps = empty_maps()
    maps[0][0, :, :, 1] = 3.0  # every square stride-8 anchor scores (64x64 anchors 8 px apart: NMS keeps a grid)
    maps[0][0, :, :, 4] = 3.0
    kept = postprocess(maps, 128, 64, POST)
    assert len(kept) > 2
    assert len(postprocess(maps, 128, 64, POST, max_boxes=2)) == 2


def test_missing_and_corrupt_files_are_detector_errors(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="model card .* is missing"):
        PersonDetection0203TF(folder=tmp_path).load()
    shipped = omz_person.model_dir()
    card = json.loads((shipped / "model.json").read_text(encoding="utf-8"))
    (tmp_path / "model.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(DetectorError, match=r"person-detection-0203\.tflite' is missing"):
        PersonDetection0203TF("tflite", folder=tmp_path).load()
    (tmp_path / card["tensorflow"]["tflite"]).write_bytes(b"not a flatbuffer")
    with pytest.raises(DetectorError, match="cannot be loaded"):
        PersonDetection0203TF("tflite", folder=tmp_path).load()
    (tmp_path / "model.json").write_text("{", encoding="utf-8")
    with pytest.raises(DetectorError, match="unreadable"):
        PersonDetection0203TF(folder=tmp_path).load()


def test_constructing_loads_nothing(tmp_path: Path) -> None:
    detector = PersonDetection0203TF("saved_model", folder=tmp_path / "nowhere")
    assert detector._runner is None
    with pytest.raises(ValueError, match="runtime must be one of"):
        PersonDetection0203TF("onnx")
    with pytest.raises(ValueError, match="multiples of 32"):
        detector.info, detector._runner = {"tensorflow": {}}, object()
        detector.raw(np.zeros((100, 64, 3), np.uint8))


def _frames(path: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    for index in range(count * 40):
        ok, frame = capture.read()
        if not ok:
            break
        if index % 40 == 0:
            frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


@pytest.mark.real_model
@pytest.mark.needs_data
@pytest.mark.parametrize("runtime", ["openvino", "saved_model"])
def test_runtimes_give_the_same_boxes(shared_data: Path, runtime: str) -> None:
    """OpenVINO (reading the TFLite file, at its default precision) and the SavedModel give TFLite's boxes:
    every box scoring >= 0.25 under TFLite is found at IoU >= 0.9 with a score within 0.03. (The conversion
    itself is checked against the original IR, at f32, by scripts/convert_person_detection.py.)"""
    if runtime == "openvino":
        pytest.importorskip("openvino")
    reference = PersonDetection0203TF("tflite", num_threads=2)
    detector = PersonDetection0203TF(runtime, num_threads=2)
    checked = 0
    for clip, size in (("pets09/vtest.avi", (480, 352)), ("mot17/MOT17-09/MOT17-09-DPM-raw.mp4", (960, 544))):
        if not (shared_data / clip).is_file():
            pytest.skip(f"{clip} not in the shared data")
        for bgr in _frames(shared_data / clip, size, 2):
            want, got = reference(bgr), detector(bgr)
            assert got.dtype == np.float32 and got.shape[1] == 5
            want, got = want[want[:, 4] >= 0.25], got[got[:, 4] >= 0.15]
            assert len(want) > 0
            iou = _iou(want, got)
            best = iou.argmax(axis=1)
            assert iou[np.arange(len(want)), best].min() >= 0.9
            assert np.abs(want[:, 4] - got[best, 4]).max() <= 0.03
            checked += len(want)
    assert checked > 10


def test_shipped_files_match_the_model_card() -> None:
    """The sha256 of every shipped TensorFlow file is the one model.json records (no stale conversion)."""
    from crowdcount.detectors.tf_models import file_sha256

    folder = omz_person.model_dir()
    card = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    recorded = card["tensorflow"]["sha256"]
    assert card["tensorflow"]["tflite"] in recorded
    assert any(name.startswith("saved_model/") for name in recorded)
    for name, digest in recorded.items():
        assert file_sha256(folder / name) == digest, name
    assert set(card["source_sha256"]) == {"person-detection-0203.xml", "person-detection-0203.bin"}
    assert [lv["stride"] for lv in card["tensorflow"]["postprocess"]["levels"]] == [8, 16, 32, 64, 128]
