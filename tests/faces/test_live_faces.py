"""A live camera never ends: unknown faces not seen for a while are forgotten, and their numbers not reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crowdcount.analyzer import FrameResult, VideoInfo
from crowdcount.analyzer.processors import FORGET_AFTER_S
from crowdcount.detectors import Detections
from crowdcount.faces import LocalGallery
from crowdcount.faces.identify import FaceIdentifier

from .support import ColourEmbedder

RED, GREEN, BLUE = (250, 0, 0), (0, 250, 0), (0, 0, 250)


def seen(identifier: FaceIdentifier, index: int, seconds: float, colour: tuple[int, int, int]) -> str:
    image = np.zeros((120, 160, 3), np.uint8)
    image[40:64, 8:32] = colour
    face = Detections(np.array([[8, 40, 32, 64]], np.float32), np.array([0.9]), np.array([1]))
    frame = FrameResult(index, seconds * 1000.0, {"Face": face})
    identifier.process(frame, image)
    return str(frame.detections["Face"].data["person"][0])


def test_unknown_faces_are_forgotten_live_and_keep_their_numbers(tmp_path: Path) -> None:
    identifier = FaceIdentifier(LocalGallery(tmp_path / "g.json"), ColourEmbedder())
    identifier.live = True
    identifier.start(VideoInfo("cam", 160, 120, 0.0, 0, "", 0), 1.0)
    assert [seen(identifier, 1, 0.0, RED), seen(identifier, 2, 1.0, GREEN)] == ["unknown-1", "unknown-2"]
    assert seen(identifier, 3, 2.0, RED) == "unknown-1"  # the same person while remembered
    # green is seen again later, red not: after FORGET_AFTER_S red is forgotten, green kept
    assert seen(identifier, 4, FORGET_AFTER_S - 10.0, GREEN) == "unknown-2"
    assert seen(identifier, 5, FORGET_AFTER_S + 30.0, BLUE) == "unknown-3"
    assert [s.number for s in identifier._unknown] == [2, 3]
    # red coming back is a new unknown person, with a new number
    assert seen(identifier, 6, FORGET_AFTER_S + 31.0, RED) == "unknown-4"


def test_a_video_remembers_every_unknown_face(tmp_path: Path) -> None:
    identifier = FaceIdentifier(LocalGallery(tmp_path / "g.json"), ColourEmbedder())
    identifier.start(VideoInfo("clip.mp4", 160, 120, 25.0, 0, "", 0), 1.0)
    assert seen(identifier, 1, 0.0, RED) == "unknown-1"
    assert seen(identifier, 2, FORGET_AFTER_S * 2, GREEN) == "unknown-2"
    assert seen(identifier, 3, FORGET_AFTER_S * 2 + 1, RED) == "unknown-1"
    assert seen(identifier, 4, FORGET_AFTER_S * 2 + 2, GREEN) == "unknown-2"
    assert [u["name"] for u in identifier.finish()["unknown"]] == ["unknown-1", "unknown-2"]
