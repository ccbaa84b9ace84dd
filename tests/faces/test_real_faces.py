"""The real default face detector (CenterFace) and the real embedders (dlib, the default, and
MobileFace) on the real faces of ../shared/data/faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.detectors import build_detector
from crowdcount.detectors.embedders import ALIGNED_SIZE, align_faces, build_embedder
from crowdcount.errors import PhotoError
from crowdcount.faces import Enroller, LocalGallery

pytestmark = [pytest.mark.real_model, pytest.mark.needs_data]


@pytest.fixture(scope="module")
def models() -> tuple:
    return build_detector("face"), build_embedder()


@pytest.mark.parametrize(("name", "dim"), [("dlib", 128), ("mobileface", 256)])
def test_enrol_then_recognise_a_degraded_copy_and_reject_strangers(
    data_dir: Path, models: tuple, tmp_path: Path, name: str, dim: int
) -> None:
    detector, _ = models
    embedder = build_embedder(name)
    enroller = Enroller(detector, embedder)
    tom = enroller.face_of(data_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg")
    assert tom.embedding.shape == (dim,) and np.linalg.norm(tom.embedding) == pytest.approx(1.0, abs=1e-5)
    gallery = LocalGallery(tmp_path / "g.json")
    gallery.enroll("tom", tom.embedding[None], {"name": name, "dim": dim})

    image = cv2.cvtColor(cv2.imread(str(data_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg")), cv2.COLOR_BGR2RGB)
    small = cv2.resize(image, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    _, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])
    small = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    faces = detector.detect([small])[0]
    assert len(faces) == 1
    matches = gallery.index().match(embedder.embed(small, faces), embedder.match_threshold)
    assert matches.names.tolist() == ["tom"] and matches.similarities[0] > 0.8

    crowd = cv2.cvtColor(cv2.imread(str(data_dir / "faces" / "bald_guys.jpg")), cv2.COLOR_BGR2RGB)
    faces = detector.detect([crowd])[0]
    assert len(faces) >= 20
    matches = gallery.index().match(embedder.embed(crowd, faces), embedder.match_threshold)
    assert set(matches.names.tolist()) == {"unknown"}
    assert matches.similarities.max() < embedder.match_threshold


def test_enrolment_refuses_a_group_photo_and_a_photo_without_faces(data_dir: Path, models: tuple) -> None:
    enroller = Enroller(*models)
    with pytest.raises(PhotoError, match=r"bald_guys.jpg: \d+ faces found, expected one"):
        enroller.face_of(data_dir / "faces" / "bald_guys.jpg")
    with pytest.raises(PhotoError, match="dogs.jpg: no face found"):
        enroller.face_of(data_dir / "faces" / "dogs.jpg")


def test_alignment_puts_the_eyes_on_the_template(data_dir: Path, models: tuple) -> None:
    detector, _ = models
    image = cv2.cvtColor(cv2.imread(str(data_dir / "faces" / "Tom_Cruise_avp_2014_4.jpg")), cv2.COLOR_BGR2RGB)
    faces = detector.detect([image])[0]
    keypoints = faces.data["keypoints"][0]
    left, right = keypoints[0], keypoints[1]
    assert left[0] < right[0]  # the left eye (as seen) comes first: MTCNN's x1..x5, y1..y5 are paired right
    assert faces.xyxy[0, 0] < keypoints[:, 0].min() and keypoints[:, 0].max() < faces.xyxy[0, 2]
    crop = align_faces(image, faces.data["keypoints"])
    assert crop.shape == (1, ALIGNED_SIZE, ALIGNED_SIZE, 3)
