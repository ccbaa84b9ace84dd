"""A camera whose own lines or zones do not fit its frames fails alone; the other cameras go on counting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, write_moving


def test_a_camera_whose_line_lies_outside_its_frame_fails_alone(tmp_path: Path, fake_detectors: None) -> None:
    clip = write_moving(tmp_path / "lobby.mp4", 30, [lambda i: (4 + 3 * i, 10)])
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        f"cameras:\n  good: {{source: '{clip}', lines: ['door=0.5,0,0.5,1']}}\n"
        f"  bad: {{source: '{clip}', lines: ['gate=0,0,900,10']}}\n"
    )
    code, out, err = run_cli("watch", "--cameras", str(cameras), "-d", "squares", "--no-table", "-o", "-")
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {r["source"] for r in records} == {"good"}
    assert [r["frame_index"] for r in records] == list(range(1, 31))  # every frame of the good camera counted
    assert records[-1]["lines"] == {"door": {"in": 0, "out": 1}}
    assert code == 1  # a source gave up
    assert (
        f"source bad failed: cameras file {cameras}: camera 'bad': line 'gate=0,0,900,10': point (900, 10) lies "
        "outside the 160x120 frame"
    ) in err
    assert err.strip().splitlines()[-1] == "Error: source(s) gave up: bad"
    assert "Traceback" not in err


def test_one_camera_whose_line_does_not_fit_is_a_configuration_error(tmp_path: Path, fake_detectors: None) -> None:
    clip = write_moving(tmp_path / "lobby.mp4", 10, [lambda i: (4 + 3 * i, 10)])
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(f"cameras:\n  bad: {{source: '{clip}', lines: ['gate=0,0,900,10']}}\n")
    code, _, err = run_cli("watch", "--cameras", str(cameras), "-d", "squares", "--no-table", "-o", "-")
    assert code == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            f"Error: cameras file {cameras}: camera 'bad': line 'gate=0,0,900,10': point (900, 10) lies outside"
        )
    )


def test_a_camera_given_up_twice_counts_once(tmp_path: Path) -> None:
    """A frame its reader had already taken can reach the watcher after its source was given up: it must not
    count as a second camera that does not fit (with two cameras, that stopped the good one too)."""
    from crowdcount.errors import ConfigError
    from crowdcount.live import Source, Watcher, parse_source

    from conftest import SquareDetector

    clip = write_moving(tmp_path / "lobby.mp4", 3, [lambda i: (4, 10)])
    watcher = Watcher([SquareDetector()], [Source(parse_source(f"good={clip}")), Source(parse_source(f"bad={clip}"))])
    unfit = ConfigError("line 'gate' lies outside the frame")
    watcher._give_up("bad", unfit)
    watcher._give_up("bad", unfit)  # the frame taken before it failed
    assert list(watcher._unfit) == ["bad"] and watcher.sources[1].status == "failed"
    with pytest.raises(ConfigError, match="lies outside"):
        watcher._give_up("good", ConfigError("line 'door' lies outside the frame"))
