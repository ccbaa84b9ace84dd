"""``faces enroll``: a NAME that is a photo on disk (NAME forgotten) is refused before anything is enrolled."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli


def test_a_name_that_is_a_photo_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # faces enroll alice.jpg bob.jpg, in the photos' folder
    photos = ["alice.jpg", "bob.jpg"]
    for name in photos:
        cv2.imwrite(name, np.full((40, 40, 3), 128, np.uint8))
    gallery = tmp_path / "g.json"
    code, stdout, err = run_cli("faces", "enroll", *photos, "-g", str(gallery))
    assert code == 2, stdout + err
    assert err == (
        "Error: the name 'alice.jpg' is a file: was NAME left out? "
        "(give NAME PHOTO..., e.g. faces enroll alice alice.jpg)\n"
    )
    assert not gallery.exists()
