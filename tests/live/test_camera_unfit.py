"""A camera whose own lines or zones do not fit its frames fails alone; the other cameras go on counting."""

from __future__ import annotations

import json
from pathlib import Path

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
