"""The person ReID embedder: the shipped TensorFlow conversion against the original OpenVINO model, batching,
crops, and its purpose on real crops (one person closer to themselves than to others)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.detectors import Detections
from crowdcount.detectors.embedders import FaceEmbedder
from crowdcount.detectors.reid import (
    PERSON_EMBEDDERS,
    PersonEmbedder,
    build_person_embedder,
    crop_people,
    reid_model_dir,
)
from crowdcount.errors import DetectorError

pytestmark = pytest.mark.real_model

IR = "person-reidentification-retail-0287"


def gt_crops(data_dir: Path, people: int = 5, per_person: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops of the first ``people`` PETS09 people from every 10th annotated frame: ``(crops, ids, frames)``."""
    rows = np.loadtxt(data_dir / "pets09" / "gt_frames001-124.txt", delimiter=",", ndmin=2)
    rows = rows[rows[:, 0] % 10 == 0]
    wanted = [i for i in np.unique(rows[:, 1]) if (rows[:, 1] == i).sum() >= per_person][:people]
    capture = cv2.VideoCapture(str(data_dir / "pets09" / "vtest.avi"))
    frames = {}
    for index in range(1, 125):
        ok, frame = capture.read()
        assert ok
        if index % 10 == 0:
            frames[index] = frame[..., ::-1].copy()
    crops, ids, where = [], [], []
    for row in rows:
        if row[1] in wanted:
            left, top, width, height = row[2:6] * 0.625
            crops.append(crop_people(frames[int(row[0])], np.array([[left, top, left + width, top + height]]))[0])
            ids.append(int(row[1]))
            where.append(int(row[0]))
    return np.array(crops), np.array(ids), np.array(where)


def test_the_shipped_model_is_the_one_recorded() -> None:
    folder = reid_model_dir()
    info = json.loads((folder / "model.json").read_text())
    assert info["licence"] == "Apache-2.0" and info["converted_by"] == "scripts/convert_reid.py"
    digest = hashlib.sha256((folder / info["tflite"]["file"]).read_bytes()).hexdigest()
    assert digest == "ec92821baf48c244dfc627c756c2aaf894194ab0075028d3642cd2b3dbccecbe"
    assert info["checks_against_openvino"]["tflite_crops"]["min_cosine"] > 0.99999


def test_same_interface_as_the_face_embedders_and_batches_agree() -> None:
    embedder = build_person_embedder(batch_size=3)
    assert isinstance(embedder, FaceEmbedder) and embedder.dim == 256
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 60, 140], [100, 0, 160, 200], [200, 100, 330, 250], [0, 0, 5, 5]], np.float32)
    together = embedder.embed(image, Detections(boxes, np.full(4, 0.9), np.zeros(4)))
    assert together.shape == (4, 256) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    one_by_one = np.concatenate([embedder.embed_boxes(image, box[None]) for box in boxes])
    assert np.abs(together - one_by_one).max() < 1e-4  # batch of 3 + 1 vs four of 1
    assert embedder.embed_boxes(image, np.zeros((0, 4))).shape == (0, 256)
    assert embedder.describe()["model"]["licence"] == "Apache-2.0"
    for runtime in ("saved_model",):
        other = PersonEmbedder(runtime=runtime)
        assert np.abs(other.embed_boxes(image, boxes) - together).max() < 1e-4


def test_crops_are_clipped_to_the_frame_and_stretched() -> None:
    image = np.zeros((100, 50, 3), np.uint8)
    image[:, :25] = 255
    crops = crop_people(image, np.array([[-10, -10, 25, 200], [48, 98, 60, 120]], np.float32))
    assert crops.shape == (2, 256, 128, 3)
    assert crops[0].min() == 255  # only the white half, clipped at the frame's edges
    assert crops[1].max() == 0  # a box hanging off the corner keeps at least one pixel


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DetectorError, match="runtime"):
        PersonEmbedder(runtime="onnx")
    with pytest.raises(DetectorError, match="batch_size"):
        PersonEmbedder(batch_size=0)
    with pytest.raises(DetectorError, match="no model.json"):
        PersonEmbedder(folder="/nonexistent").load()
    with pytest.raises(DetectorError, match="did you mean 'person-reid-0287'"):
        build_person_embedder("person-reid-287")


def test_models_are_chosen_by_name() -> None:
    assert sorted(PERSON_EMBEDDERS) == ["person-reid-0287"]
    embedder = build_person_embedder("person-reid-0287")
    assert embedder.name == "person-reid-0287" and embedder.folder == reid_model_dir("person-reid-0287")
    assert embedder.model_info()["name"] == "person-reidentification-retail-0287"


@pytest.mark.needs_data
def test_one_person_is_closer_to_themselves_than_to_others_on_real_crops(data_dir: Path) -> None:
    crops, ids, frames = gt_crops(data_dir)
    vectors = build_person_embedder().embed_crops(crops)
    sims = vectors @ vectors.T
    same = ids[:, None] == ids[None, :]
    other_frame = frames[:, None] != frames[None, :]
    # mean similarity to the same person's other views beats that to anyone else, for every person
    for person in np.unique(ids):
        mine = ids == person
        to_self = sims[np.ix_(mine, mine)][~np.eye(mine.sum(), dtype=bool)].mean()
        to_others = sims[np.ix_(mine, ~mine)].mean()
        assert to_self > to_others + 0.1, (person, to_self, to_others)
    # nearest neighbour (from another frame) is the same person for most crops
    masked = np.where(other_frame, sims, -2.0)
    right = same[np.arange(len(ids)), masked.argmax(axis=1)]
    assert right.mean() >= 0.8, right.mean()


@pytest.mark.needs_data
def test_the_tensorflow_model_matches_openvino_on_real_crops(data_dir: Path) -> None:
    ov = pytest.importorskip("openvino")
    xml = data_dir.parent / "models" / "person-reid" / f"{IR}.xml"
    if not xml.is_file():
        pytest.skip(f"{xml} not found")
    crops, _, _ = gt_crops(data_dir, people=3, per_person=6)
    model = ov.Core().read_model(str(xml))
    model.reshape([-1, 3, 256, 128])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    reference = np.asarray(compiled(crops[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32))[0])
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    ours = build_person_embedder().embed_crops(crops)
    assert np.abs(ours - reference).max() < 1e-3
    assert (ours * reference).sum(axis=1).min() > 0.9999
