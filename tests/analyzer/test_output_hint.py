"""``-o`` naming an existing file that is not a result file: one line saying what a file name must end in."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli, write_moving


def test_an_output_that_is_another_file_says_how_to_fix_it(tmp_path: Path, fake_detectors: None) -> None:
    video = write_moving(tmp_path / "clip.mp4", 3, [lambda i: (4, 10)])
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli("analyze", str(video), "-d", "squares", "-o", str(tmp_path / "notes.txt"))
    assert code == 2
    assert err == (
        f"Error: --output '{tmp_path / 'notes.txt'}' exists and is not a folder (a file name here must end in .json)"
        " (give a folder, or a .json file name)\n"
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"
