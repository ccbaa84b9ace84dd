"""A video file that cannot be opened is a failed source at once (exit 1, one line saying why), not a connection
retried forever: reopening a file that is no video never makes it one."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.live import Source, parse_source
from crowdcount.live.sources import FAILED


def test_a_file_that_is_no_video_fails_without_reconnecting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    source = Source(parse_source(str(bad)), reconnect_delay_s=0.05).start()
    try:
        source._supervisor.join(10)
        assert not source._supervisor.is_alive()
        assert (source.status, source.reconnects, source.last_error) == (FAILED, 0, f"cannot open {bad}")
    finally:
        source.stop()


def test_watch_of_a_file_that_is_no_video_exits_1_saying_why(tmp_path: Path, fake_detectors: None) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    result = CliRunner().invoke(cli, ["watch", str(bad), "-d", "squares", "--no-table", "--json", "--duration", "10"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[1].endswith(f" ERROR crowdcount.live.sources: source bad.mp4 failed: cannot open {bad}")
    assert lines[-1] == "Error: source(s) gave up: bad.mp4"


def test_stream_produce_of_a_file_that_is_no_video_exits_1_saying_why(
    tmp_path: Path, kafka_bootstrap: str, squares_clip: Path
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    topics = ["--bootstrap", kafka_bootstrap, "--topic", f"raw-{uuid.uuid4().hex[:6]}", "--partitions", "1"]
    result = CliRunner().invoke(
        cli, ["stream", "produce", f"gate={squares_clip}", f"bad={bad}", *topics, "--duration", "20"]
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["published"] == 24 and summary["sources"]["bad"]["status"] == "failed"
    assert f" ERROR crowdcount.live.sources: source bad failed: cannot open {bad}" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Error: source(s) gave up: bad"
