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
