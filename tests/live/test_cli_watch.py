"""``crowdcount watch``: JSON lines on stdout or a file, the mode line, intervals, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from crowdcount.cli.main import cli

from conftest import squares_in_frame


def test_watch_a_file_writes_json_lines_and_says_the_mode(squares_clip: Path, fake_detectors: None) -> None:
    result = CliRunner().invoke(cli, ["watch", f"clip={squares_clip}", "-d", "squares", "--no-table", "-o", "-"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["counts"]["Human"] for r in lines] == [squares_in_frame(i) for i in range(24)]
    assert "file mode (clip): every frame is analysed, none dropped" in result.stderr
    assert "clip" in result.stderr and "ended" in result.stderr  # the final table


def test_watch_every_to_a_file_with_json_summary(squares_clip: Path, fake_detectors: None, tmp_path: Path) -> None:
    out = tmp_path / "out" / "counts.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "watch",
            str(squares_clip),
            "-d",
            "squares",
            "--realtime",
            "--speed",
            "4",
            "--every",
            "200ms",
            "-o",
            str(out),
            "--json",
            "--no-table",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "live mode (squares.mp4): the latest frame is analysed, older ones dropped" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) >= 2 and all(r["source"] == "squares.mp4" and "interval_s" in r for r in records)
    (row,) = json.loads(result.stdout)["sources"]
    assert row["frames_decoded"] == 24 and row["frames_analyzed"] + row["frames_dropped"] == 24
    assert row["mode"] == "live" and row["people_max"] == {"Human": 3}


def test_watch_bad_input_is_one_line_and_exit_2(fake_detectors: None) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["watch", "nothere.mp4", "-d", "squares"])
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines()[-1].startswith("Error: source 'nothere.mp4' is not a URL")
    bad = runner.invoke(cli, ["watch", "0", "-d", "squares", "--every", "soon"])
    assert bad.exit_code == 2 and "'soon' is not a duration (e.g. 500ms, 1s, 2m, 1h)" in bad.output
    unknown = runner.invoke(cli, ["watch", "0", "-d", "nope"])
    assert unknown.exit_code == 2 and "unknown detector 'nope'" in unknown.output


def test_watch_a_source_that_gives_up_exits_1(fake_detectors: None) -> None:
    from .mjpeg import free_port

    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"
    result = CliRunner().invoke(
        cli, ["watch", f"cam={url}", "-d", "squares", "--retries", "0", "--open-timeout", "1s", "--no-table"]
    )
    assert result.exit_code == 1, result.output
    assert "Error: source(s) gave up: cam" in result.stderr
