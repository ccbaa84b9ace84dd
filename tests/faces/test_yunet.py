"""YuNet itself (``face`` with ``model=yunet, verify=none``): arguments, the shipped file, real photos. The default
(CenterFace checked by O-Net) and YuNet checked by O-Net are tested in test_face_default.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.detectors import build_detector
from crowdcount.detectors.base import iou_matrix
from crowdcount.detectors.face import YUNET_FILE, yunet_dir
from crowdcount.errors import DetectorError


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"model": "retinaface"}, "model must be one of centerface, mtcnn, yunet, got 'retinaface'"),
        ({"model": "yunet", "nms_threshold": 1.5}, r"nms_threshold must be a number in \(0, 1\), got 1.5"),
        ({"model": "yunet", "nms_threshold": True}, "nms_threshold must be a number"),
    ],
)
def test_bad_arguments(args: dict, message: str) -> None:
    with pytest.raises(DetectorError, match=message):
        build_detector("face", args)


def test_the_shipped_model_is_the_recorded_file() -> None:
    info = json.loads((yunet_dir() / "model.json").read_text())
    data = (yunet_dir() / YUNET_FILE).read_bytes()
    assert info["sha256"] == {YUNET_FILE: hashlib.sha256(data).hexdigest()}
    assert info["licence"] == "MIT" and (yunet_dir() / "LICENSE").read_text().startswith("MIT License")
    detector = build_detector("face", {"model": "yunet", "verify": "none"})
    assert detector._loaded is False  # nothing loads when built
    assert detector.min_detection_score == 0.7  # YuNet's own operating point; MTCNN's and the default's are 0.5
    assert build_detector("face", {"model": "mtcnn"}).min_detection_score == 0.5
    assert detector.describe()["arguments"]["model"] == "yunet"
    assert detector.model_info()["licence"] == "MIT" and detector.model_info()["format"] == "onnx"


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.mark.real_model
@pytest.mark.needs_data
def test_yunet_finds_the_annotated_faces_and_their_keypoints(data_dir: Path) -> None:
    import xml.etree.ElementTree as ET

    detector = build_detector("face", {"model": "yunet", "verify": "none", "min_detection_score": 0.5})
    found = total = false_positives = 0
    root = ET.parse(data_dir / "faces" / "testing.xml").getroot()
    for image in root.iter("image"):
        boxes = np.array(
            [
                [float(b.get(k)) for k in ("left", "top")]
                + [float(b.get("left")) + float(b.get("width")), float(b.get("top")) + float(b.get("height"))]
                for b in image.iter("box")
            ]
        )
        (dets,) = detector.detect([rgb(data_dir / "faces" / image.get("file"))])
        total += len(boxes)
        overlap = iou_matrix(boxes, dets.xyxy) if len(dets) else np.zeros((len(boxes), 1))
        found += int((overlap.max(axis=1) >= 0.5).sum())
        false_positives += int((overlap.max(axis=0) < 0.3).sum()) if len(dets) else 0
        keypoints = dets.data["keypoints"]
        assert keypoints.shape == (len(dets), 5, 2)
        inside = (keypoints >= dets.xyxy[:, None, :2] - 2) & (keypoints <= dets.xyxy[:, None, 2:] + 2)
        assert inside.all()
    assert (total, found) == (25, 25) and false_positives <= 3  # as MTCNN (some are unannotated faces)
    dogs = rgb(data_dir / "faces" / "dogs.jpg")
    assert detector.detect([dogs])[0].confidence.max() < 0.9  # dogs' faces score up to ~0.88: a known weakness
    assert not len(
        build_detector("face", {"model": "yunet", "verify": "none", "min_detection_score": 0.9}).detect([dogs])[0]
    )


@pytest.mark.real_model
@pytest.mark.needs_data
def test_yunet_finds_a_close_up_face_and_a_crowd(data_dir: Path) -> None:
    detector = build_detector("face", {"model": "yunet", "verify": "none", "min_detection_score": 0.9})
    tom = rgb(data_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg")
    close_up = cv2.resize(tom, None, fx=3, fy=3)  # the face far beyond YuNet's ~300 px: the coarse pass finds it
    for image in (tom, close_up):
        (faces,) = detector.detect([image])
        assert len(faces) == 1
        left_eye, right_eye = faces.data["keypoints"][0, :2]
        assert left_eye[0] < right_eye[0]  # the eye seen on the left first, as MTCNN (alignment relies on it)
    crowd = rgb(data_dir / "faces" / "bald_guys.jpg")
    (faces,) = detector.detect([crowd])
    assert len(faces) >= 20
    (weak,) = detector.detect([crowd], score_floor=0.3)  # a tracker's lower floor reaches YuNet's own threshold
    assert len(weak) > len(faces) and weak.confidence.min() >= 0.3
    assert len(detector.detect([crowd])[0]) == len(faces)  # and the floor does not stick
