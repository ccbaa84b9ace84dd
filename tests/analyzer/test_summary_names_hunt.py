"""The summary of ``analyze`` tells two videos of one name apart (``cam1/a.mp4``, ``cam2/a.mp4``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli

from conftest import write_video

pytestmark = pytest.mark.usefixtures("fake_detectors", "keep_logging")


def test_videos_of_one_name_are_shown_by_their_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for camera in ("cam1", "cam2"):
        (tmp_path / camera).mkdir()
        write_video(tmp_path / camera / "a.mp4", 4)
    write_video(tmp_path / "b.mp4", 4)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["analyze", "cam1/a.mp4", "cam2/a.mp4", "b.mp4", "-d", "squares", "--no-track", "-o", "out"]
    )
    assert (result.exit_code, result.stderr) == (0, "")
    rows = [line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")]
    assert rows == ["cam1/a.mp4", "cam2/a.mp4", "b.mp4"]
    notes = [line for line in result.stdout.splitlines() if "result file" in line]
    assert notes == [
        "cam1/a.mp4: result file out/a.json",
        "cam2/a.mp4: result file out/a-2.json",
        "b.mp4: result file out/b.json",
    ]
