"""Hidden files (macOS's ``._name`` AppleDouble files, ``.DS_Store``) in folders given to ``analyze``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.analyzer.files import find_videos
from crowdcount.analyzer.video import ImageSequence

from conftest import run_cli, write_video

APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4000)


def test_a_sequence_folder_copied_from_a_mac_is_still_a_sequence(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), np.zeros((12, 16, 3), np.uint8))
        (folder / f"._{i + 1:06d}.png").write_bytes(APPLE_DOUBLE)
    sequence = ImageSequence.find(folder)
    assert sequence is not None
    assert [p.name for p in sequence.files] == ["000001.png", "000002.png", "000003.png"]


def test_hidden_files_and_folders_in_a_folder_of_videos_are_not_videos(tmp_path: Path) -> None:
    write_video(tmp_path / "a.mp4", 4)
    (tmp_path / "._a.mp4").write_bytes(APPLE_DOUBLE)
    (tmp_path / ".Trashes").mkdir()
    write_video(tmp_path / ".Trashes" / "old.mp4", 4)
    assert find_videos([tmp_path]) == [tmp_path / "a.mp4"]


@pytest.mark.usefixtures("fake_detectors", "keep_logging")
def test_analyze_of_a_folder_copied_from_a_mac_succeeds(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", 8)
    (videos / "._a.mp4").write_bytes(APPLE_DOUBLE)
    code, _, err = run_cli("analyze", str(videos), "-d", "squares", "-o", str(tmp_path / "out"))
    assert (code, err) == (0, "")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json"]


def test_a_hidden_video_named_on_the_command_line_is_still_analysed(tmp_path: Path) -> None:
    write_video(tmp_path / ".a.mp4", 4)
    assert find_videos([tmp_path / ".a.mp4"]) == [tmp_path / ".a.mp4"]
