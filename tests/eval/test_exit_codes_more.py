"""A damaged result file is a failed input, as a damaged video is: exit code 1 (README's table) from ``eval`` and
``find`` alike, on one line naming the file and what is wrong with it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture
def gt(tmp_path: Path) -> Path:
    path = tmp_path / "gt.txt"
    path.write_text("1,1,0,0,10,10,1\n")
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("not json", "is not a readable result file: Expecting value: line 1 column 1 (char 0)"),
        ("no frames", "is not a crowdcount result file (no 'frames' list)"),
        ("missing", "is not a readable result file: [Errno 2] No such file or directory"),
        ("frame without index", "is damaged (KeyError: 'frame_index') (write it again with 'crowdcount analyze')"),
    ],
)
def test_eval_a_damaged_result_file_exits_1(tmp_path: Path, gt: Path, damage: str, message: str) -> None:
    result = tmp_path / "r.json"
    document = {
        "video": {"width": 100, "height": 100},
        "detectors": [{"name": "human", "category": "Human", "arguments": {"min_detection_score": 0.5}}],
        "frames": [{"Human": {"boxes": [], "scores": []}}],
    }
    if damage == "not json":
        result.write_text("oops")
    elif damage == "no frames":
        result.write_text(json.dumps({"video": {}}))
    elif damage == "frame without index":
        result.write_text(json.dumps(document))
    for track in ([], ["--track"]):
        code, stdout, err = run_cli("eval", str(result), "--gt", str(gt), *track)
        if track and damage == "frame without index":
            message = "has no tracks"  # no tracking section: not damaged, analysed without tracks
            assert code == 2, err
            continue
        assert code == 1, err
        assert err.startswith(f"Error: result file {str(result)!r} {message}") or err.startswith(
            f"Error: {str(result)!r} {message}"
        ), err
        assert err.count("\n") == 1 and stdout == ""


@pytest.mark.real_model
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("not json", "is not a readable result file: Expecting value: line 1 column 1 (char 0)"),
        ("no frames", "is not a crowdcount result file (no 'frames' list)"),
        ("damaged vector", "a damaged result file (ValueError: "),
    ],
)
def test_find_a_damaged_result_file_exits_1(tmp_path: Path, damage: str, message: str) -> None:
    from crowdcount.analyzer.tracking import encode_vector

    photo = tmp_path / "person.png"
    image = np.full((120, 50, 3), 90, np.uint8)
    image[10:60, 10:40] = (30, 30, 160)
    cv2.imwrite(str(photo), image)
    result = tmp_path / "r.json"
    person = {"track_id": 1, "first_s": 0.0, "last_s": 1.0, "embedding": "AAAA"}  # 3 bytes: not float16 values
    tracking = {"people": [person], "embeddings": {"model": "person-reid-0287"}}
    if damage == "not json":
        result.write_text("oops")
    elif damage == "no frames":
        result.write_text(json.dumps({"tracking": {**tracking, "people": [{**person, "embedding": encode_vector(
            np.ones(256, np.float32))}]}}))  # fmt: skip
    else:
        result.write_text(json.dumps({"video": {"name": "v.mp4"}, "frames": [], "tracking": tracking}))
    out = tmp_path / "matches.json"
    code, _, err = run_cli("find", str(photo), "--in", str(result), "-o", str(out))
    assert code == 1, err
    assert message in err and str(result) in err and err.count("\n") == 1 and err.startswith("Error: "), err
    assert not out.exists()
