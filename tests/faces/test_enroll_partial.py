"""``faces enroll FOLDER``: when writing one person fails after others were enrolled, the one-line error says who
is in the gallery and how to finish (every photo is checked first; only a write can fail this late)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crowdcount.errors import GalleryError
from crowdcount.faces import LocalGallery

from .support import COLOURS, write_photo
from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_faces")


def test_a_write_failing_midway_says_who_was_enrolled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "people"
    for name in ("alice", "bob", "carol"):
        (folder / name).mkdir(parents=True)
        write_photo(folder / name / "1.jpg", [COLOURS[name]])
    real_enroll = LocalGallery.enroll

    def enroll(self: LocalGallery, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "bob":
            raise GalleryError(f"cannot write {self.location}: disk full")
        return real_enroll(self, name, *args, **kwargs)

    monkeypatch.setattr(LocalGallery, "enroll", enroll)
    gallery = tmp_path / "g.json"
    code, out, err = run("faces", "enroll", str(folder), "-g", str(gallery), "--embedder", "colour")
    assert code == 2 and out == ""
    assert err == (
        f"Error: cannot write {gallery}: disk full (enrolled before it: 'alice'; 'bob' and the people after it not)"
        " (fix the cause and run the same command again with --update)\n"
    )
    assert LocalGallery(gallery).names() == ["alice"]
    monkeypatch.setattr(LocalGallery, "enroll", real_enroll)
    code, out, _ = run("faces", "enroll", str(folder), "-g", str(gallery), "--embedder", "colour", "--update")
    assert code == 0 and LocalGallery(gallery).names() == ["alice", "bob", "carol"]
