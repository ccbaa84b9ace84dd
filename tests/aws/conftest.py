"""Fixtures of the AWS tests: moto's in-process mock with the resources created, tiny videos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import REGION, MockAws, make_config, write_video


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("videos") / "tiny.mp4")


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 frames: with a slow fake detector, long enough to stop or heartbeat mid-job."""
    return write_video(tmp_path_factory.mktemp("videos") / "long.mp4", frames=60)


@pytest.fixture(scope="session")
def corrupt_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("videos") / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video at all " * 50)
    return path


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, no endpoint from the environment, no config file from the environment."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "CROWDCOUNT_CONFIG", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws(aws_env: None, tmp_path: Path) -> Iterator[MockAws]:
    """Moto's in-process AWS with the bucket, queue + DLQ and table of the test config."""
    from moto import mock_aws

    with mock_aws():
        yield MockAws(make_config(tmp_path), tmp_path)
