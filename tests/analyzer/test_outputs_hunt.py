"""``crowdcount analyze``'s output planning: results never replace the videos being analysed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_detectors", "keep_logging")


def test_an_annotated_video_planned_over_an_input_video_is_refused_before_any_work(
    tmp_path: Path, video_factory
) -> None:
    video = video_factory("a.mp4", frames=8)
    before = video.read_bytes()
    code, _, err = run("analyze", str(video), "-d", "squares", "-o", str(tmp_path / "out"), "--annotate", str(tmp_path))
    assert code == 2
    assert err == (
        f"Error: --annotate would write {str(video)!r}, which is a video being analysed "
        "(give another folder or file name)\n"
    )
    assert video.read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_an_annotated_video_file_naming_the_input_is_refused(tmp_path: Path, video_factory) -> None:
    video = video_factory("a.mp4", frames=8)
    before = video.read_bytes()
    code, _, err = run("analyze", str(video), "-d", "squares", "--annotate", str(video), "-o", str(tmp_path / "o"))
    assert code == 2
    assert "is a video being analysed" in err
    assert video.read_bytes() == before


def test_an_annotated_video_over_another_input_of_the_same_folder_is_refused(tmp_path: Path, video_factory) -> None:
    first = video_factory("a.avi", frames=8, fourcc="MJPG")
    second = video_factory("a.mp4", frames=8)
    before = second.read_bytes()
    code, _, err = run(
        "analyze", str(first), str(second), "-d", "squares", "-o", str(tmp_path / "o"), "--annotate", str(tmp_path)
    )
    assert code == 2
    assert f"would write {str(second)!r}" in err
    assert second.read_bytes() == before


def test_a_plot_planned_into_an_image_sequence_being_analysed_is_refused(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), np.zeros((120, 160, 3), np.uint8))
    code, _, err = run("analyze", str(folder), "-d", "squares", "-o", str(tmp_path / "o"), "--plot", str(folder))
    assert code == 2
    assert err == (
        f"Error: --plot would write {str(folder / 'frames.png')!r} into the image sequence {str(folder)!r} being "
        "analysed (give another folder or file name)\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["000001.png", "000002.png", "000003.png"]


def test_a_second_run_leaves_out_the_annotated_videos_of_the_first_in_a_folder_given(
    tmp_path: Path, video_factory
) -> None:
    video_factory("a.mp4", frames=8)
    args = ["analyze", str(tmp_path), "-d", "squares", "--no-track", "-o", str(tmp_path / "results")]
    args += ["--annotate", str(tmp_path / "annotated")]
    assert run(*args)[0] == 0
    code, out, err = run(*args, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["videos"][0]["video"] == str(tmp_path / "a.mp4")
    assert len(json.loads(out)["videos"]) == 1
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["a.mp4"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["a.json"]


def test_an_annotated_video_named_on_the_command_line_is_analysed(tmp_path: Path, video_factory) -> None:
    video_factory("a.mp4", frames=8)
    assert run("analyze", str(tmp_path / "a.mp4"), "-d", "squares", "-o", str(tmp_path / "r"), "--annotate",
               str(tmp_path / "annotated"))[0] == 0  # fmt: skip
    code, out, _ = run(
        "analyze", str(tmp_path / "annotated" / "a.mp4"), "-d", "squares", "--no-track", "-o", str(tmp_path / "r2"),
        "--annotate", str(tmp_path / "annotated"), "--json",
    )  # fmt: skip
    assert code == 2  # it would write itself
    assert out == ""


def test_results_beside_the_videos_of_a_folder_given_are_fine(tmp_path: Path, video_factory) -> None:
    video_factory("a.mp4", frames=8)
    video_factory("b.mp4", frames=8)
    for _ in range(2):
        code, out, err = run("analyze", str(tmp_path), "-d", "squares", "--no-track", "-o", str(tmp_path), "--json")
        assert (code, err) == (0, "")
        assert [v["result_file"] for v in json.loads(out)["videos"]] == [
            str(tmp_path / "a.json"),
            str(tmp_path / "b.json"),
        ]
