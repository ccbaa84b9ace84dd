"""Faces own their galleries: a registry of location schemes (a local file by default), dynamodb:// added by
crowdcount.aws; identification of single images; a local identification that never imports the cloud."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from crowdcount.detectors import Detections
from crowdcount.errors import GalleryError
from crowdcount.faces import FaceIdentifier, Gallery, LocalGallery, open_gallery, register_scheme
from crowdcount.faces.gallery import _SCHEMES, gallery_schemes, location_scheme

from .support import COLOURS, ColourEmbedder, write_photo

REPO = Path(__file__).resolve().parents[2]


def boxes(n: int) -> Detections:
    """write_photo's first ``n`` squares."""
    xyxy = np.array([[8 + k * 36, 40, 32 + k * 36, 64] for k in range(n)], np.float32)
    return Detections(xyxy, np.full(n, 0.9), np.ones(n))


def rgb_photo(path: Path, names: list[str]) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(write_photo(path, [COLOURS[n] for n in names]))), cv2.COLOR_BGR2RGB)


def test_a_path_opens_a_local_gallery(tmp_path: Path) -> None:
    gallery = open_gallery(str(tmp_path / "people.json"))
    assert isinstance(gallery, LocalGallery) and gallery.location == str(tmp_path / "people.json")
    assert location_scheme(str(tmp_path / "people.json")) is None and location_scheme("DynamoDB://t") == "dynamodb"


def test_an_unknown_scheme_names_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    schemes: dict[str, Any] = {}
    monkeypatch.setattr("crowdcount.faces.gallery._SCHEMES", schemes)
    with pytest.raises(GalleryError, match=r"unknown scheme s3://") as info:
        open_gallery("s3://bucket/people.json")
    assert info.value.hint == "give a file path"
    from crowdcount.aws.gallery import open_dynamodb_gallery

    schemes["dynamodb"] = open_dynamodb_gallery
    with pytest.raises(GalleryError) as info:
        open_gallery("dynamodbb://faces")
    assert info.value.hint == "did you mean dynamodb://? give a file path or dynamodb://NAME"
    with pytest.raises(GalleryError, match="names no table"):
        open_gallery("dynamodb://")


def test_a_registered_scheme_gets_the_callers_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[str, Mapping[str, Any]]] = []

    def opener(location: str, options: Mapping[str, Any]) -> Gallery:
        seen.append((location, options))
        return LocalGallery(tmp_path / "memory.json")

    monkeypatch.setitem(_SCHEMES, "memory", opener)
    assert isinstance(open_gallery("memory://team", {"token": 1}), LocalGallery)
    assert seen == [("memory://team", {"token": 1})] and "memory" in gallery_schemes()
    with pytest.raises(ValueError, match="a name such as"):
        register_scheme("mem ory", opener)


def test_identify_names_the_faces_of_one_image(tmp_path: Path) -> None:
    gallery = LocalGallery(tmp_path / "people.json")
    embedder = ColourEmbedder()
    gallery.enroll(
        "alice", embedder.embed(rgb_photo(tmp_path / "a.png", ["alice"]), boxes(1)), {"name": "colour", "dim": 3}
    )
    identifier = FaceIdentifier(gallery, embedder, min_face_size=20)
    image = rgb_photo(tmp_path / "ab.png", ["alice", "carol"])
    named = identifier.identify(image, boxes(2))
    assert named.data["identity"].tolist() == ["alice", "unknown"]
    assert named.data["similarity"][0] > 0.99 and named.data["similarity"][1] < identifier.match_threshold
    small = Detections(np.array([[8, 40, 18, 50]], np.float32), np.array([0.9]), np.array([1]))
    assert identifier.identify(image, small).data["identity"].tolist() == ["unknown"]  # too small to name
    assert identifier.identify(image, boxes(0)).data["identity"].tolist() == []
    assert identifier.finish()["faces_seen"] == 0  # single images are not counted as a video's sightings


def test_a_local_identification_never_imports_the_cloud(tmp_path: Path) -> None:
    """build_pipeline with a local gallery, in a fresh interpreter: the identify stage is built and crowdcount.aws
    is never imported (before, the faces processors came from crowdcount.aws.gallery)."""
    gallery = tmp_path / "people.json"
    LocalGallery(gallery).enroll("alice", np.ones((1, 3), np.float32), {"name": "colour", "dim": 3})
    code = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from faces.support import ColourEmbedder
from crowdcount.detectors.embedders import EMBEDDERS
EMBEDDERS["colour"] = ColourEmbedder
from crowdcount.analyzer.pipeline import build_pipeline
from crowdcount.config import load_config
from crowdcount.faces.identify import gallery_stage
config = load_config(None, environ={{}}, overrides={{"faces": {{"gallery": {str(gallery)!r}, "embedder": "colour"}}}})
pipeline = build_pipeline(config, None, gallery_stage(config))
print(sorted(m for m in sys.modules if m.startswith("crowdcount.aws")), pipeline.identifier.name,
      [d.category for d in pipeline.detectors], [p.name for p in pipeline.processors][-1])
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "faces", "['Human',", "'Face']", "faces"]
