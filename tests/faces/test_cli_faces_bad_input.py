"""`crowdcount faces` and `--identify` given bad input: one line, exit 2, and the gallery as it was."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from .support import COLOURS, write_people_video, write_photo
from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_faces")

NAME_HINT = "(a name is a label: printable characters without / or \\, not . or .., at most 100 characters)"


def test_a_gallery_that_cannot_be_written_is_one_line_and_keeps_what_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photo(tmp_path / "carol.png", [COLOURS["carol"]])
    write_photo(tmp_path / "bob.png", [COLOURS["bob"]])
    gallery = tmp_path / "g.json"
    code, _, err = run(
        "faces", "enroll", "carol", str(tmp_path / "carol.png"), "-g", str(gallery), "--embedder", "colour"
    )
    assert code == 0, err
    before = gallery.read_bytes()

    def read_only_folder(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only_folder)
    code, out, err = run(
        "faces", "enroll", "bob", str(tmp_path / "bob.png"), "-g", str(gallery), "--embedder", "colour"
    )
    assert (code, out) == (2, "")
    assert err == (
        f"Error: gallery {gallery} cannot be written: Permission denied "
        "(check the folder's permissions and free space, or give another --gallery)\n"
    )
    assert gallery.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bob.png", "carol.png", "g.json"]


def test_a_name_that_is_not_valid_text_says_so(tmp_path: Path) -> None:
    write_photo(tmp_path / "carol.png", [COLOURS["carol"]])
    name = "bo\udcffb"  # the byte 0xff in a UTF-8 terminal's argument
    code, _, err = run("faces", "enroll", name, str(tmp_path / "carol.png"), "-g", str(tmp_path / "g.json"))
    assert code == 2
    assert err == f"Error: invalid name {name!r}: not valid text in the terminal's encoding (UTF-8?) {NAME_HINT}\n"
    assert not (tmp_path / "g.json").exists()


def test_identify_against_a_gallery_that_does_not_exist_is_an_error_not_no_one_known(tmp_path: Path) -> None:
    video = write_people_video(tmp_path / "room.avi", [["carol"]] * 4)
    missing = tmp_path / "typo.json"
    code, out, err = run("analyze", str(video), "-d", "face", "--identify", str(missing), "-o", str(tmp_path / "out"))
    assert (code, out) == (2, "")
    assert err == (
        f"Error: gallery {missing} does not exist (enrol people into it first (crowdcount faces enroll NAME PHOTO "
        f"-g {missing}), or check --identify / faces.gallery)\n"
    )
    assert not missing.exists()
    # a link to a gallery that is gone (moved, a volume not mounted) is no gallery either
    link = tmp_path / "link.json"
    link.symlink_to(missing)
    code, out, err = run("analyze", str(video), "-d", "face", "--identify", str(link), "-o", str(tmp_path / "out"))
    assert (code, out) == (2, "")
    assert err.startswith(f"Error: gallery {link} does not exist (")


def test_forget_says_which_result_files_may_still_name_the_person(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    good = results / "a.json"
    good.write_text('{"faces": {"people": [{"name": "carol"}]}}')
    broken = results / "b.json"  # cut short: names carol, cannot be parsed, so cannot be redacted
    broken.write_text('{"faces": {"people": [{"name": "carol"')
    unrelated = results / "c.json"  # not JSON, and no carol in it: nothing to do
    unrelated.write_text("not json")
    gallery = tmp_path / "g.json"
    code, out, err = run("faces", "forget", "carol", "-g", str(gallery), "--results", str(results))
    assert code == 1
    assert out.splitlines()[-1] == (
        f"redacted carol in 1 of 3 result file(s) in {results} (1 mention(s) now 'forgotten')"
    )
    assert err.splitlines()[-1] == (
        "Error: carol may still be named in 1 file(s) that could not be redacted (unreadable, not writable, or not "
        f"valid JSON): {broken} (fix or delete them, then run forget again)"
    )
    assert "carol" not in good.read_text()
    assert broken.read_text() == '{"faces": {"people": [{"name": "carol"'


def test_a_gallery_write_that_fails_leaves_no_kept_photos_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photo(tmp_path / "carol.png", [COLOURS["carol"]])
    gallery = tmp_path / "g.json"

    def full_disk(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    code, _, err = run(
        "faces", "enroll", "carol", str(tmp_path / "carol.png"), "-g", str(gallery), "--embedder", "colour",
        "--keep-photos",
    )  # fmt: skip
    assert code == 2
    assert err == (
        f"Error: gallery {gallery} cannot be written: No space left on device "
        "(check the folder's permissions and free space, or give another --gallery)\n"
    )
    assert not gallery.exists()
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")] in (
        ["carol.png", "g.json.photos"],
        ["carol.png"],
    )


def test_a_photo_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    write_photo(tmp_path / "carol.png", [COLOURS["carol"]])
    gallery = tmp_path / "g.json"
    (tmp_path / "g.json.photos").write_text("a file where the photo folder goes")
    code, _, err = run(
        "faces", "enroll", "carol", str(tmp_path / "carol.png"), "-g", str(gallery), "--embedder", "colour",
        "--keep-photos",
    )  # fmt: skip
    assert code == 2
    assert err.startswith(f"Error: the photo folder {tmp_path / 'g.json.photos' / 'carol'} cannot be written: ")
    assert err.endswith(" (check the folder's permissions and free space, or leave out --keep-photos)\n")
    assert not gallery.exists()


def test_two_folders_that_name_one_person_are_refused_not_merged_away(tmp_path: Path) -> None:
    people = tmp_path / "people"
    for folder, colour in (("carol", "carol"), ("carol ", "bob")):  # names are stripped: both are 'carol'
        (people / folder).mkdir(parents=True)
        write_photo(people / folder / "1.png", [COLOURS[colour]])
    gallery = tmp_path / "g.json"
    code, out, err = run("faces", "enroll", str(people), "-g", str(gallery), "--embedder", "colour")
    assert (code, out) == (2, "")
    assert err == (
        "Error: the folders 'carol' and 'carol ' both name 'carol' "
        "(rename one, or put all of that person's photos in one folder)\n"
    )
    assert not gallery.exists()


def test_forget_names_a_result_file_it_cannot_rewrite_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked, other = tmp_path / "locked", tmp_path / "other"
    for folder in (locked, other):
        folder.mkdir()
        (folder / "r.json").write_text('{"faces": {"people": [{"name": "carol"}]}}')
    real_mkstemp = tempfile.mkstemp

    def read_only_results(*args: object, **kwargs: object) -> tuple[int, str]:
        if kwargs.get("dir") == locked:  # a read-only folder (the tests run as root: chmod would not stop them)
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(tempfile, "mkstemp", read_only_results)
    code, out, err = run(
        "faces", "forget", "carol", "-g", str(tmp_path / "g.json"), "--results", str(locked), "--results", str(other)
    )
    assert code == 1
    assert out.splitlines() == [
        f"redacted carol in 0 of 1 result file(s) in {locked} (0 mention(s) now 'forgotten')",
        f"redacted carol in 1 of 1 result file(s) in {other} (1 mention(s) now 'forgotten')",
    ]
    assert err.splitlines()[-1] == (
        "Error: carol may still be named in 1 file(s) that could not be redacted (unreadable, not writable, or not "
        f"valid JSON): {locked / 'r.json'} (fix or delete them, then run forget again)"
    )
    assert "carol" in (locked / "r.json").read_text() and "carol" not in (other / "r.json").read_text()
    assert sorted(p.name for p in locked.iterdir()) == ["r.json"]
