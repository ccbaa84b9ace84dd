"""Result-file fields that are there but wrong (not a number, repeated) are a damaged file, on one line with exit
code 1, never a traceback or a quietly wrong figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli


def document() -> dict:
    box = [0.0, 0.0, 0.1, 0.1]
    return {
        "fps": 10.0,
        "frame_ratio": 1.0,
        "count_smoothing": {"seconds": 1.0},
        "video": {"width": 100, "height": 100},
        "detectors": [{"name": "human", "category": "Human", "arguments": {"min_detection_score": 0.5}}],
        "frames": [
            {
                "frame_index": 1,
                "Human": {"boxes": [box, [0, 0.2, 0.1, 0.3]], "scores": [0.9, 0.8], "track_ids": [1, 2]},
            },
            {"frame_index": 2, "Human": {"boxes": [box], "scores": [0.9], "track_ids": [1]}},
        ],
        "tracking": {"people": [{"track_id": 1}, {"track_id": 2}]},
    }


@pytest.mark.parametrize(
    ("damage", "track", "message"),
    [
        ("fps NaN", False, "(ValueError: fps is nan, not a frame rate)"),
        ("fps infinite", False, "(ValueError: fps is inf, not a frame rate)"),
        ("frame_ratio 3", False, "(ValueError: frame_ratio is 3, not a share of frames in (0, 1])"),
        ("smoothing seconds text", False, "(ValueError: could not convert string to float: 'one')"),
        ("score NaN", False, "(ValueError: frame 1 has a box or score that is not a number)"),
        ("box NaN", False, "(ValueError: frame 1 has a box or score that is not a number)"),
        ("frame twice", False, "(ValueError: frame 1 appears twice)"),
        ("box NaN", True, "(ValueError: frame 1 has a box that is not a number)"),
        ("frame twice", True, "(ValueError: frame 1 appears twice)"),
        ("track twice in a frame", True, "(ValueError: frame 1 has track 1 twice)"),
    ],
)
def test_a_wrong_field_is_a_damaged_file(tmp_path: Path, damage: str, track: bool, message: str) -> None:
    doc = document()
    first = doc["frames"][0]["Human"]
    if damage == "fps NaN":
        doc["fps"] = float("nan")  # json writes NaN, and reads it back
    elif damage == "fps infinite":
        doc["fps"] = float("inf")
    elif damage == "frame_ratio 3":
        doc["frame_ratio"] = 3
    elif damage == "smoothing seconds text":
        doc["count_smoothing"]["seconds"] = "one"
    elif damage == "score NaN":
        first["scores"][0] = float("nan")
    elif damage == "box NaN":
        first["boxes"][1][0] = float("nan")
    elif damage == "frame twice":
        doc["frames"].append(doc["frames"][0])
    else:
        first["track_ids"] = [1, 1]
    result = tmp_path / "r.json"
    result.write_text(json.dumps(doc))
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n1,2,20,0,10,10,1\n2,1,0,0,10,10,1\n")
    code, stdout, err = run_cli("eval", str(result), "--gt", str(gt), *(["--track"] if track else []))
    assert code == 1, err
    hint = "(write it again with 'crowdcount analyze')"
    assert err == f"Error: result file {str(result)!r} is damaged {message} {hint}\n"
    assert stdout == ""


def test_the_undamaged_document_is_evaluated(tmp_path: Path) -> None:
    result = tmp_path / "r.json"
    result.write_text(json.dumps(document()))
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n1,2,20,0,10,10,1\n2,1,0,0,10,10,1\n")
    for track in ([], ["--track"]):
        code, stdout, err = run_cli("eval", str(result), "--gt", str(gt), "--json", *track)
        assert code == 0, err
        metrics = json.loads(stdout)
        assert (metrics["MOTA"] == 1.0) if track else (metrics["count_mae"] == 0.0 and metrics["precision"] == 1.0)
