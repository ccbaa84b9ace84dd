"""``analyze --annotate``: a video whose analysis fails or is interrupted leaves no half-annotated video behind."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SquareDetector, run_cli, write_video

pytestmark = pytest.mark.usefixtures("fake_detectors", "keep_logging")


def sequence_with_a_broken_frame(folder: Path) -> Path:
    folder.mkdir()
    for i in range(8):
        image = np.zeros((120, 160, 3), np.uint8)
        image[0:4, 0:4] = (0, 0, 255)
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), image)
    (folder / "000006.png").write_bytes(b"not a picture")
    (folder / "seqinfo.ini").write_text("[Sequence]\nframeRate=10\n")
    return folder


def test_a_video_that_fails_part_way_leaves_no_annotated_video(tmp_path: Path) -> None:
    frames = sequence_with_a_broken_frame(tmp_path / "frames")
    annotated = tmp_path / "annotated"
    code, _, err = run_cli(
        "analyze", str(frames), "-d", "squares", "--frame-ratio", "1", "--batch-size", "1",
        "-o", str(tmp_path / "out"), "--annotate", str(annotated),
    )  # fmt: skip
    assert code == 1
    assert err == f"Error: {str(frames / '000006.png')!r} in the image sequence cannot be read as an image\n"
    assert not annotated.exists()
    assert not (tmp_path / "out").exists()


def test_a_failed_video_keeps_the_annotated_video_of_an_earlier_run(tmp_path: Path) -> None:
    frames = sequence_with_a_broken_frame(tmp_path / "frames")
    annotated = tmp_path / "annotated"
    annotated.mkdir()
    (annotated / "frames.mp4").write_bytes(b"an earlier run's video")
    code, _, _ = run_cli(
        "analyze", str(frames), "-d", "squares", "--frame-ratio", "1", "-o", str(tmp_path / "out"),
        "--annotate", str(annotated),
    )  # fmt: skip
    assert code == 1
    assert sorted(p.name for p in annotated.iterdir()) == ["frames.mp4"]
    assert (annotated / "frames.mp4").read_bytes() == b"an earlier run's video"


def test_ctrl_c_leaves_the_finished_videos_and_nothing_of_the_interrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_video(tmp_path / "a.mp4", 8)
    second = write_video(tmp_path / "b.mp4", 40)
    real_detect = SquareDetector._detect
    calls = {"b": 0}

    def detect(self: SquareDetector, frames):  # type: ignore[no-untyped-def]
        if len(self.batches) > 3:  # well into the second video (a.mp4: 4 batches of 2 frames)
            calls["b"] += 1
            raise KeyboardInterrupt
        return real_detect(self, frames)

    monkeypatch.setattr(SquareDetector, "_detect", detect)
    annotated = tmp_path / "annotated"
    code, _, err = run_cli(
        "analyze", str(first), str(second), "-d", "squares", "--frame-ratio", "1", "--batch-size", "2",
        "-o", str(tmp_path / "out"), "--annotate", str(annotated),
    )  # fmt: skip
    assert (code, calls["b"]) == (130, 1)  # the shell's code for an interrupted command
    assert err == "Interrupted (Ctrl-C): outputs not finished were not written\n"
    assert sorted(p.name for p in annotated.iterdir()) == ["a.mp4"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json"]
    document = json.loads((tmp_path / "out" / "a.json").read_text())
    assert document["annotate"] == {"path": str(annotated / "a.mp4"), "frames_written": 8}
    assert cv2.VideoCapture(str(annotated / "a.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 8
