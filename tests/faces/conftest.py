"""Fixtures of the face tests: the fake face detector and the fake colour embedder registered by name."""

from __future__ import annotations

import pytest

from crowdcount.detectors import DETECTORS
from crowdcount.detectors.embedders import EMBEDDERS

from .support import ColourEmbedder
from conftest import FaceSquareDetector


@pytest.fixture
def fake_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    """``face`` finds the squares (no colour check) and the ``colour`` embedder is the default."""

    class Squares(FaceSquareDetector):
        def __init__(self, min_detection_score: float = 0.5, max_batch_size: int = 4, **_: object) -> None:
            super().__init__(min_detection_score, max_batch_size)
            self.check_rgb = False

    monkeypatch.setitem(DETECTORS, "face", Squares)
    monkeypatch.setitem(EMBEDDERS, "colour", ColourEmbedder)
