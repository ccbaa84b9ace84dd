"""``crowdcount submit`` refuses, before uploading, what the worker would dead-letter (moto's in-process mock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli

from .support import MockAws

pytestmark = pytest.mark.usefixtures("keep_logging")


def test_a_video_over_max_video_bytes_is_refused_before_the_upload(
    aws: MockAws, tiny_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = tiny_video.stat().st_size
    monkeypatch.setenv("CROWDCOUNT_WORKER__MAX_VIDEO_BYTES", str(size - 1))
    result = CliRunner().invoke(cli, ["submit", str(tiny_video), "--video-id", "4"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: {str(tiny_video)!r} is {size} bytes, over worker.max_video_bytes ({size - 1}): the worker would "
        "refuse it (split the video, or raise worker.max_video_bytes for the workers too)\n"
    )
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0  # nothing uploaded
    assert aws.queue_counts() == (0, 0)
    assert aws.dynamodb.scan(TableName=aws.resources.table)["Items"] == []


def test_a_video_of_exactly_max_video_bytes_is_submitted(
    aws: MockAws, tiny_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDCOUNT_WORKER__MAX_VIDEO_BYTES", str(tiny_video.stat().st_size))
    result = CliRunner().invoke(cli, ["submit", str(tiny_video), "--video-id", "4"])
    assert result.exit_code == 0, result.output
    assert aws.queue_counts() == (1, 0)


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        (
            "MAX_PIXELS",
            "3071",
            "{video!r} is 64x48 (3072 pixels a frame), over worker.max_pixels (3071): the worker would refuse it "
            "(downscale it, or raise worker.max_pixels for the workers too)",
        ),
        (
            "MAX_DURATION_SECONDS",
            "1",
            "{video!r} lasts 1.2 s, over worker.max_duration_seconds (1): the worker would refuse it "
            "(split it, or raise worker.max_duration_seconds for the workers too)",
        ),
    ],
)
def test_a_video_over_the_workers_pixel_or_duration_limit_is_refused_before_the_upload(
    aws: MockAws, tiny_video: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, error: str
) -> None:
    """The worker dead-letters such a video after downloading it; submit has probed it already and says so."""
    monkeypatch.setenv(f"CROWDCOUNT_WORKER__{key}", value)
    result = CliRunner().invoke(cli, ["submit", str(tiny_video), "--video-id", "4"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: " + error.format(video=str(tiny_video)) + "\n"
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0
    assert aws.queue_counts() == (0, 0)
