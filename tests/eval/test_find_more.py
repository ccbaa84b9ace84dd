"""``crowdcount find --in FOLDER``: result files in the folder whose fields are not what analyze writes are
reported on one line, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli


@pytest.mark.parametrize("video", ["x", ["a"], None, {"name": ["a"]}])
def test_a_folder_with_a_result_whose_video_is_not_an_object(tmp_path: Path, video: object) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "r.json").write_text(json.dumps({"tracking": {"embeddings": {}}, "video": video, "frames": []}))
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not a jpeg")  # the folder is planned before the photos are read
    code, _, err = run_cli("find", str(photo), "--in", str(folder))
    assert code == 1, err
    assert err == f"Error: photo {str(photo)!r} cannot be read as an image (give a JPEG, PNG or BMP photo)\n"


@pytest.mark.real_model
def test_a_folder_with_a_result_whose_video_is_text_is_searched_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    result = folder / "r.json"
    result.write_text(json.dumps({"tracking": {"embeddings": {}}, "video": "x", "frames": []}))
    photo = tmp_path / "person.png"
    image = np.full((120, 50, 3), 90, np.uint8)
    image[10:60, 10:40] = (30, 30, 160)
    cv2.imwrite(str(photo), image)
    out = tmp_path / "matches.json"
    code, _, err = run_cli("find", str(photo), "--in", str(folder), "-o", str(out))
    assert code == 1, err
    assert err == f"Error: {result}: no people were tracked in this video (nothing to search in it)\n"
    assert not out.exists()


def test_a_result_naming_a_video_path_with_a_nul_byte(tmp_path: Path) -> None:
    result = tmp_path / "r.json"
    result.write_text(json.dumps({"tracking": {"embeddings": {}}, "video": {"path": "a\0b"}, "frames": []}))
    (tmp_path / "v.mp4").write_bytes(b"a video")  # is it the one the result was written for?
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not a jpeg")  # the sources are planned before the photos are read
    code, _, err = run_cli("find", str(photo), "--in", str(result), "--in", str(tmp_path / "v.mp4"))
    assert code == 1, err
    assert err == f"Error: photo {str(photo)!r} cannot be read as an image (give a JPEG, PNG or BMP photo)\n"
