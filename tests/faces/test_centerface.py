"""CenterFace itself (``face`` with ``verify=none``): the shipped file, OpenVINO against OpenCV, decoding on
real photos. The default (CenterFace checked by O-Net) is tested in test_face_default.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.detectors import build_detector
from crowdcount.detectors import face as face_module
from crowdcount.detectors.base import iou_matrix
from crowdcount.detectors.face import CENTERFACE_FILE, CENTERFACE_OUTPUTS, centerface_dir
from crowdcount.errors import DetectorError
from crowdcount.eval.groundtruth import read_imglab


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_the_shipped_model_is_the_recorded_file() -> None:
    info = json.loads((centerface_dir() / "model.json").read_text())
    data = (centerface_dir() / CENTERFACE_FILE).read_bytes()
    assert info["sha256"] == {CENTERFACE_FILE: hashlib.sha256(data).hexdigest()}
    # the upstream file's Git blob id (Star-Clouds/CenterFace models/onnx/centerface_bnmerged.onnx)
    assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == "e334bcc016b1e3fff6561d108a0d4b86c0003f9f"
    assert info["licence"] == "MIT" and (centerface_dir() / "LICENSE").read_text().startswith("MIT License")
    detector = build_detector("face", {"verify": "none"})
    assert detector._loaded is False and detector._centerface is None  # nothing loads when built
    assert (detector.model, detector.min_detection_score) == ("centerface", 0.5)
    assert detector.model_info()["format"] == "onnx" and detector.model_info()["licence"] == "MIT"


def test_a_missing_model_file_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(face_module, "centerface_dir", lambda: tmp_path)
    with pytest.raises(DetectorError, match=r"the CenterFace model .*centerface.onnx is missing"):
        build_detector("face", {"verify": "none"}).load()
    (tmp_path / CENTERFACE_FILE).write_bytes(b"not an onnx graph")
    with pytest.raises(DetectorError, match=r"the CenterFace model .*centerface.onnx cannot be read"):
        build_detector("face", {"verify": "none"}).load()


@pytest.mark.real_model
@pytest.mark.needs_data
def test_openvino_gives_opencvs_heads(data_dir: Path) -> None:
    import openvino

    photo = rgb(data_dir / "faces" / "2008_002470.jpg")[:320, :480]  # 480 x 320: multiples of 32
    blob = cv2.dnn.blobFromImage(np.ascontiguousarray(photo), 1.0, (480, 320), (0, 0, 0), swapRB=False)
    model = openvino.Core().read_model(str(centerface_dir() / CENTERFACE_FILE))
    model.reshape({model.inputs[0].get_any_name(): openvino.PartialShape([1, 3, -1, -1])})
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(blob)
    ours = [result[compiled.output(name)] for name in CENTERFACE_OUTPUTS]
    net = cv2.dnn.readNetFromONNX(str(centerface_dir() / CENTERFACE_FILE))  # a second runtime (as onnxruntime)
    net.setInput(blob)
    theirs = net.forward(list(CENTERFACE_OUTPUTS))
    assert [a.shape for a in ours] == [(1, 1, 80, 120), (1, 2, 80, 120), (1, 2, 80, 120), (1, 10, 80, 120)]
    for a, b in zip(ours, theirs, strict=True):  # in float32, the same numbers
        np.testing.assert_allclose(a, b, atol=1e-3)
    # the detector runs in OpenVINO's default precision (bfloat16 on CPUs that have it): the same faces
    detector = build_detector("face", {"verify": "none", "min_detection_score": 0.3})
    (found,) = detector.detect([photo])
    exact = build_detector("face", {"verify": "none", "min_detection_score": 0.3})
    exact.load()
    exact._centerface = compiled  # the float32 model above
    (reference,) = exact.detect([photo])
    assert len(found) == len(reference) > 3
    assert (iou_matrix(reference.xyxy, found.xyxy).max(axis=1) > 0.9).all()
    np.testing.assert_allclose(np.sort(found.confidence), np.sort(reference.confidence), atol=0.03)


@pytest.mark.real_model
@pytest.mark.needs_data
def test_centerface_finds_the_annotated_faces_with_their_keypoints(data_dir: Path) -> None:
    detector = build_detector("face", {"verify": "none"})
    found = total = 0
    for photo, truth in read_imglab(data_dir / "faces" / "testing.xml").frames.items():
        boxes = truth.xyxy
        (dets,) = detector.detect([rgb(Path(str(photo)))])
        total += len(boxes)
        found += int((iou_matrix(boxes, dets.xyxy).max(axis=1) >= 0.5).sum()) if len(dets) else 0
        keypoints = dets.data["keypoints"]
        assert keypoints.shape == (len(dets), 5, 2)
        inside = (keypoints >= dets.xyxy[:, None, :2] - 2) & (keypoints <= dets.xyxy[:, None, 2:] + 2)
        assert inside.all()
        assert (keypoints[:, 0, 0] < keypoints[:, 1, 0]).all()  # the eye seen on the left first (alignment)
    assert (total, found) == (25, 25)


@pytest.mark.real_model
@pytest.mark.needs_data
def test_any_frame_size_and_a_close_up(data_dir: Path) -> None:
    detector = build_detector("face", {"verify": "none"})
    tom = rgb(data_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg")
    (face,) = detector.detect([tom])
    assert len(face) == 1
    odd = np.ascontiguousarray(tom[: tom.shape[0] - 13, : tom.shape[1] - 7])  # not multiples of 32
    (cropped,) = detector.detect([odd])
    assert len(cropped) == 1 and iou_matrix(face.xyxy, cropped.xyxy)[0, 0] > 0.9
    assert (cropped.xyxy[:, 2] <= odd.shape[1]).all() and (cropped.xyxy[:, 3] <= odd.shape[0]).all()
    close_up = cv2.resize(tom, None, fx=3, fy=3)  # a face of several hundred pixels
    (big,) = detector.detect([close_up])
    assert len(big) == 1 and iou_matrix(face.xyxy * 3, big.xyxy)[0, 0] > 0.8
