"""Units: alignment geometry, gallery matching, the identifier's clustering, embedder building."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdcount.detectors.embedders import TEMPLATE_112, align_faces, build_embedder, normalize
from crowdcount.errors import DetectorError, GalleryError
from crowdcount.faces import GalleryIndex, LocalGallery, Person


def test_alignment_maps_keypoints_onto_the_template() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    # keypoints of a face twice the template's size, shifted by (50, 20): a white dot on the left eye
    keypoints = TEMPLATE_112 * 2 + [50, 20]
    x, y = keypoints[0].round().astype(int)
    image[y - 2 : y + 3, x - 2 : x + 3] = 255
    crop = align_faces(image, keypoints[None])[0]
    ys, xs = np.nonzero(crop[..., 0] > 100)
    assert xs.mean() == pytest.approx(TEMPLATE_112[0, 0], abs=1.0)
    assert ys.mean() == pytest.approx(TEMPLATE_112[0, 1], abs=1.0)


def test_index_matches_the_best_person_over_all_their_vectors() -> None:
    people = [
        Person("a", normalize(np.array([[1, 0, 0], [0.6, 0.8, 0]]))),
        Person("b", normalize(np.array([[0, 0, 1]]))),
    ]
    index = GalleryIndex(people, 3)
    matches = index.match(normalize(np.array([[0.5, 0.85, 0], [0, 0.1, 1], [-1, 0, 0]])), threshold=0.9)
    assert matches.names.tolist() == ["a", "b", "unknown"]
    assert matches.nearest.tolist() == ["a", "b", "b"]
    assert matches.similarities[2] == pytest.approx(0.0)
    empty = GalleryIndex([], 3).match(normalize(np.ones((2, 3))), 0.5)
    assert empty.names.tolist() == ["unknown", "unknown"]


def test_gallery_refuses_vectors_of_another_embedder(tmp_path: Path) -> None:
    gallery = LocalGallery(tmp_path / "g.json")
    gallery.enroll("a", np.ones((1, 3)), {"name": "colour", "dim": 3})
    with pytest.raises(GalleryError, match=r"holds colour embeddings \(3-d\), not mobileface \(256-d\)"):
        gallery.enroll("b", np.ones((1, 256)), {"name": "mobileface", "dim": 256})
    assert LocalGallery(tmp_path / "g.json").names() == ["a"]


@pytest.mark.parametrize("name", ["", "  ", "a/b", "unknown", "Unknown-3"])
def test_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(GalleryError):
        LocalGallery(tmp_path / "g.json").enroll(name, np.ones((1, 3)), {"name": "colour", "dim": 3})


def test_build_embedder_errors(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="unknown face embedder 'nope'"):
        build_embedder("nope")
    with pytest.raises(DetectorError, match="holds no saved_model.pb"):
        build_embedder(str(tmp_path))
    with pytest.raises(DetectorError, match=r"does not exist"):
        build_embedder(str(tmp_path / "x.dat"))
    with pytest.raises(DetectorError, match=r"match_threshold must be a cosine similarity in \[-1, 1\]"):
        build_embedder("mobileface", match_threshold=2.0)
    embedder = build_embedder("mobileface", cluster_threshold=0.7)
    assert (embedder.name, embedder.dim, embedder.cluster_threshold) == ("mobileface", 256, 0.7)


def test_dlib_embedder_loads_only_the_5_point_predictor(tmp_path: Path) -> None:
    from crowdcount.detectors.embedders import DlibEmbedder

    for name in (DlibEmbedder.MODEL_FILE, DlibEmbedder.PREDICTOR_FILE, "shape_predictor_68_face_landmarks.dat"):
        (tmp_path / name).write_bytes(b"x")
    model, predictor = DlibEmbedder(tmp_path / DlibEmbedder.MODEL_FILE)._paths()
    assert (model.name, predictor.name) == (DlibEmbedder.MODEL_FILE, "shape_predictor_5_face_landmarks.dat")
    (tmp_path / DlibEmbedder.PREDICTOR_FILE).unlink()
    with pytest.raises(DetectorError, match="shape_predictor_5_face_landmarks.dat' does not exist"):
        DlibEmbedder(tmp_path / DlibEmbedder.MODEL_FILE)._paths()


def test_seconds_on_screen_in_a_video_of_unknown_frame_rate(tmp_path: Path) -> None:
    """A video whose frame rate is unknown (0) is taken as 25 fps by every frame processor (tracking, zones,
    contacts, the annotated video): a face seen in 3 analysed frames was on screen 0.12 s, not 0."""
    from crowdcount.analyzer import FrameResult, VideoInfo
    from crowdcount.detectors import Detections
    from crowdcount.faces.identify import FaceIdentifier

    from .support import ColourEmbedder

    identifier = FaceIdentifier(LocalGallery(tmp_path / "g.json"), ColourEmbedder())
    identifier.start(VideoInfo("raw.h264", 160, 120, 0.0, 0, "h264", 0), 1.0)
    image = np.zeros((120, 160, 3), np.uint8)
    image[40:64, 8:32] = (200, 150, 150)
    for index, timestamp in ((1, 0.0), (2, 40.0), (3, 80.0)):
        face = Detections(np.array([[8, 40, 32, 64]], np.float32), np.array([0.9]), np.array([1]))
        identifier.process(FrameResult(index, timestamp, {"Face": face}), image)
    (unknown,) = identifier.finish()["unknown"]
    assert (unknown["frames"], unknown["seconds_on_screen"]) == (3, 0.12)
