"""A video file that opens but holds no frame is a failed source (exit 1, as the README's table says of an empty
video), not a source that ended having watched nothing."""

from __future__ import annotations

from pathlib import Path

import cv2
from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.live import Source, parse_source
from crowdcount.live.sources import FAILED


def empty_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()  # a header, no frame: OpenCV opens it and reads nothing
    assert cv2.VideoCapture(str(path)).isOpened()
    return path


def test_an_empty_video_fails(tmp_path: Path) -> None:
    empty = empty_video(tmp_path / "empty.avi")
    source = Source(parse_source(str(empty))).start()
    try:
        source._supervisor.join(10)
        assert (source.status, source.last_error) == (FAILED, f"no frame of {empty} could be decoded (an empty video)")
    finally:
        source.stop()


def test_watch_of_an_empty_video_exits_1_saying_why(tmp_path: Path, fake_detectors: None) -> None:
    empty = empty_video(tmp_path / "empty.avi")
    result = CliRunner().invoke(cli, ["watch", str(empty), "-d", "squares", "--no-table", "--duration", "10"])
    assert result.exit_code == 1, result.output
    assert f"source empty.avi failed: no frame of {empty} could be decoded (an empty video)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: source(s) gave up: empty.avi"
