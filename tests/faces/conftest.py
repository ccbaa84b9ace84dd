"""Fixtures of the face tests: the fake face detector and the fake colour embedder registered by name, and
moto's server as the AWS of the DynamoDB gallery tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crowdcount.aws.sandbox import start_sandbox
from crowdcount.config import load_config
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


REGION = "us-east-1"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    """moto's server (``crowdcount sandbox``), one per test module: its endpoint URL."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        box = start_sandbox(load_config(None, environ={}), port=0)
        try:
            yield box.endpoint
        finally:
            box.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, sandbox: str) -> str:
    """The environment of a CLI run against :func:`sandbox` (test credentials, its endpoint): the endpoint."""
    for name in ("AWS_PROFILE", "CROWDCOUNT_CONFIG", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox)
    return sandbox
