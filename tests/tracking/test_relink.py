"""Re-linking by appearance on a synthetic occlusion: a red "person" hidden for 2.5 s (longer than ByteTrack keeps
a lost track) comes back as the same person; the motion gate and the merge pass; stored embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from crowdcount.analyzer import VideoAnalyzer, to_document
from crowdcount.analyzer.tracking import TrackingProcessor, decode_vector, encode_vector
from crowdcount.detectors import Detections, Detector

RED, GREEN = (0, 0, 255), (0, 255, 0)  # BGR, as cv2 writes them
WIDTH, HEIGHT = 16, 32


class BlobDetector(Detector):
    """Finds the coloured rectangles (anything not black) of :func:`write_walkers`."""

    category = "Human"
    name = "blobs"

    def _load(self) -> None:
        pass

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            mask = (frame.max(axis=2) > 100).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:n] if area > 100]
            out.append(Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.9), np.ones(len(boxes))))
        return out

    def model_info(self) -> dict[str, Any]:
        return {"name": "blobs"}


class ColourEmbedder:
    """Appearance = the crop's mean colour (unit vector), so red and green people differ and each matches itself."""

    name = "colour"
    dim = 3

    def __init__(self) -> None:
        self.crops = 0

    def embed_boxes(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        out = []
        for x0, y0, x1, y1 in np.asarray(xyxy, int):
            mean = image[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0) + 1.0
            out.append(mean / np.linalg.norm(mean))
        self.crops += len(out)
        return np.array(out, np.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def write_walkers(path: Path, hidden: range, reappear_x: int | None = None, frames: int = 70) -> Path:
    """10 fps: red walks right along the top (2 px a frame), unseen during ``hidden`` (reappearing at
    ``reappear_x`` if given); green walks left along the bottom the whole time."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (200, 120))
    for i in range(frames):
        frame = np.zeros((120, 200, 3), np.uint8)
        if i not in hidden:
            x = 4 + 2 * i if reappear_x is None or i < hidden.start else reappear_x + 2 * (i - hidden.stop)
            frame[10 : 10 + HEIGHT, x : x + WIDTH] = RED
        x = 180 - 2 * i
        frame[70 : 70 + HEIGHT, x : x + WIDTH] = GREEN
        writer.write(frame)
    writer.release()
    return path


def analyse(video: Path, **settings: Any) -> tuple[dict[str, Any], ColourEmbedder]:
    embedder = ColourEmbedder()
    processor = TrackingProcessor(high_score=0.5, embedder=embedder, **settings)
    result = VideoAnalyzer([BlobDetector(0.5)], processors=[processor]).analyze(video)
    return to_document(result), embedder


def red_ids(document: dict[str, Any]) -> list[int]:
    """The track id of the red walker (top of the frame) in each frame it is seen and tracked."""
    out = []
    for frame in document["frames"]:
        entry = frame["Human"]
        for box, track in zip(entry["boxes"], entry["track_ids"], strict=True):
            if box[0] < 0.3 and track > 0:
                out.append(track)
    return out


@pytest.fixture
def occluded(tmp_path: Path) -> Path:
    return write_walkers(tmp_path / "occluded.mp4", range(20, 45))


def test_a_person_hidden_longer_than_bytetrack_keeps_tracks_is_relinked(occluded: Path) -> None:
    plain, _ = analyse(occluded, appearance=False)
    assert plain["tracking"]["unique_people"] == 3  # ByteTrack alone: red comes back as a new person
    assert len(set(red_ids(plain))) == 2

    document, embedder = analyse(occluded)
    tracking = document["tracking"]
    assert tracking["unique_people"] == 2
    assert set(red_ids(document)) == {1}  # one id before and after the 2.5 s gap
    red = next(p for p in tracking["people"] if p["track_id"] == 1)
    assert red["tracklets"] == 2 and red["first_frame"] == 1 and red["last_frame"] == 70
    # on screen: frames 1-20 and 46-70 (each tracklet from its first sighting), not the hidden 2.5 s
    assert red["present_s"] == pytest.approx(2.0 + 2.5, abs=0.11)
    assert tracking["appearance"]["tracklets"] == 3
    # embedded only when needed: new tracklets, galleries filling (every 0.5 s), refreshes (every 2 s)
    assert 0 < embedder.crops == tracking["appearance"]["crops_embedded"] < 30


def test_the_merge_pass_joins_what_was_not_relinked_online(occluded: Path) -> None:
    document, _ = analyse(occluded, link_window_s=0.0)  # no online re-link: only the merge pass at the end
    assert document["tracking"]["unique_people"] == 2
    assert set(red_ids(document)) == {1}
    assert [p["tracklets"] for p in document["tracking"]["people"]] == [2, 1]


def test_a_person_too_far_away_to_have_walked_there_is_not_relinked(tmp_path: Path) -> None:
    # red is last seen at x = 42 and reappears 2.6 s later at x = 130 (88 px on): at max_speed 0.5 body heights
    # a second that is out of reach (32 px x (0.5 x 2.6 + 1) = 74 px), at 5 it is not
    video = write_walkers(tmp_path / "jump.mp4", range(20, 45), reappear_x=130)
    assert analyse(video, max_speed=0.5)[0]["tracking"]["unique_people"] == 3
    assert analyse(video, max_speed=5.0)[0]["tracking"]["unique_people"] == 2


def test_embeddings_are_stored_only_when_asked(occluded: Path) -> None:
    document, _ = analyse(occluded)
    assert "embeddings" not in document["tracking"]
    assert all("embedding" not in p for p in document["tracking"]["people"])
    document, _ = analyse(occluded, store_embeddings=True)
    assert document["tracking"]["embeddings"] == {"model": "colour", "dim": 3, "encoding": "base64 float16"}
    vectors = {p["track_id"]: decode_vector(p["embedding"]) for p in document["tracking"]["people"]}
    assert set(vectors) == {1, 2}
    assert vectors[1] @ vectors[2] < 0.9  # red and green
    assert all(abs(np.linalg.norm(v) - 1) < 1e-6 for v in vectors.values())


def test_vector_encoding_round_trips_at_float16_precision() -> None:
    vector = np.random.default_rng(1).normal(size=256).astype(np.float32)
    vector /= np.linalg.norm(vector)
    text = encode_vector(vector)
    assert len(text) == 684  # 512 bytes in base64
    assert np.abs(decode_vector(text) - vector).max() < 1e-3


class ListEmbedder:
    """Returns fixed vectors for the frame's boxes, by row, and records what it was asked."""

    name = "fixed"
    dim = 3

    def __init__(self, vectors: np.ndarray, boxes: np.ndarray) -> None:
        self.vectors, self.boxes, self.asked = vectors, boxes, []

    def embed_boxes(self, image: Any, xyxy: np.ndarray) -> np.ndarray:
        rows = [int(np.flatnonzero(np.all(self.boxes == box, axis=1))[0]) for box in xyxy]
        self.asked.append(rows)
        return self.vectors[rows]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def test_appearance_reranks_only_ambiguous_pairs_and_never_validates_a_pair() -> None:
    from types import SimpleNamespace

    from crowdcount.analyzer.tracking import Segment, Tracklet

    red, green, blue = np.eye(3, dtype=np.float32)
    boxes = np.array([[0, 0, 10, 20], [12, 0, 22, 20], [50, 0, 60, 20]], np.float32)
    embedder = ListEmbedder(np.stack([green, red, blue]), boxes)  # box 0 looks green, box 1 red
    processor = TrackingProcessor(high_score=0.5, embedder=embedder, associate_weight=0.5)
    segment = Segment(1, 1, 0.0, boxes[0], 1, 0.0, boxes[0])
    processor._tracklets = {1: Tracklet(1, [segment], gallery=[red]), 2: Tracklet(2, [segment], gallery=[green])}
    # tracks: red (ByteTrack id 0), green (id 1), an unconfirmed one (-1)
    processor._tracker = SimpleNamespace(tracks=[SimpleNamespace(tracker_id=i) for i in (0, 1, -1)])
    processor._boxes, processor._scores = boxes, np.array([0.9, 0.9, 0.9], np.float32)
    processor._frame_vectors = {}
    # by boxes alone red would take box 0 and green box 1 (a swap); box 2 is the unconfirmed track's, alone
    similarity = np.array([[0.6, 0.5, 0.0], [0.5, 0.6, 0.0], [0.0, 0.0, 0.7]], np.float32)
    fused = processor._fuse(similarity)
    assert fused[0, 1] > fused[0, 0] and fused[1, 0] > fused[1, 1]  # appearance undoes the swap
    assert fused[0, 0] == fused[1, 1] == pytest.approx(0.35)  # 0.6 + 0.5 x (0 - 0.5)
    assert fused[0, 1] == fused[1, 0] == pytest.approx(0.75)  # 0.5 + 0.5 x (1 - 0.5)
    assert fused[2, 2] == 0.7 and fused[0, 2] == 0.0 and fused[2, 0] == 0.0  # not ambiguous, not valid: untouched
    assert embedder.asked == [[0, 1]]  # only the ambiguous boxes, in one batch
    # a pair moved down stops at the IoU threshold: still valid
    weak = processor._fuse(np.array([[0.32, 0.31, 0], [0.31, 0.32, 0], [0, 0, 0.7]], np.float32))
    assert weak[0, 0] == pytest.approx(0.3) and weak[0, 1] > 0.3


def test_the_worker_config_turns_stored_embeddings_on(tmp_path: Path) -> None:
    # the worker builds its processors with build_processors(config["tracking"]), like analyze: a config (here
    # its environment override) that sets tracking.embeddings makes its result files searchable by `find`
    from crowdcount.analyzer.pipeline import build_processors
    from crowdcount.config import load_config

    config = load_config(None, environ={"CROWDCOUNT_TRACKING__EMBEDDINGS": "true"})
    (scenery, processor) = build_processors(config["tracking"], [BlobDetector(0.5)])
    assert scenery.name == "scenery"
    assert isinstance(processor, TrackingProcessor) and processor.store_embeddings and processor.appearance
    (_, plain) = build_processors(load_config(None, environ={})["tracking"], [BlobDetector(0.5)])
    assert not plain.store_embeddings and plain.associate_weight == 0.5 and plain.gallery_size == 4
