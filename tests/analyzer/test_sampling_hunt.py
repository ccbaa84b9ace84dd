"""``crowdcount analyze --sample-fps`` / ``--frame-ratio``: the command line wins over the configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_detectors", "keep_logging")


def test_sample_fps_on_the_command_line_overrides_a_configured_frame_ratio(tmp_path: Path, video_factory) -> None:
    video = video_factory("a.mp4", frames=20)  # 10 fps
    config = tmp_path / "variables.json"
    config.write_text(json.dumps({"human_detection": {"frame_ratio": 0.5}}))
    out = tmp_path / "a.json"
    code, _, err = run(
        "analyze", str(video), "-d", "squares", "--no-track", "-o", str(out), "--config", str(config),
        "--sample-fps", "2",
    )  # fmt: skip
    assert (code, err) == (0, "")
    document = json.loads(out.read_text())
    assert document["frame_ratio"] == 0.2
    assert [f["frame_index"] for f in document["frames"]] == [1, 6, 11, 16]


def test_frame_ratio_and_sample_fps_together_are_refused(tmp_path: Path, video_factory) -> None:
    video = video_factory("a.mp4", frames=20)
    code, _, err = run(
        "analyze", str(video), "-d", "squares", "-o", str(tmp_path / "o"), "--frame-ratio", "1", "--sample-fps", "2"
    )
    assert code == 2
    assert err == (
        "Error: --frame-ratio and --sample-fps both choose the frames analysed "
        "(give one: --frame-ratio 0.2 analyses every fifth frame, --sample-fps 2 two frames a second)\n"
    )
    assert not (tmp_path / "o").exists()
