"""``crowdcount eval`` on a hand-made result file (no model needed), and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli


def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """Pixels of a 100x100 video -> the result file's normalised [ymin, xmin, ymax, xmax]."""
    return [y0 / 100, x0 / 100, y1 / 100, x1 / 100]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    # The same two frames as test_eval_metrics: count MAE 0.5, P 0.5, R 2/3, AP 2.2/3 at threshold 0.5.
    document = {
        "video": {"width": 100, "height": 100},
        "detectors": [{"name": "human", "category": "Human", "arguments": {"min_detection_score": 0.5}}],
        "frames": [
            {
                "frame_index": 1,
                "frame_timestamp": 0.0,
                "Human": {
                    "classes": [1, 1, 1],
                    "boxes": [box(0, 0, 10, 10), box(1, 0, 11, 10), box(20, 0, 30, 10)],
                    "scores": [0.9, 0.8, 0.3],
                },
            },
            {
                "frame_index": 2,
                "frame_timestamp": 100.0,
                "Human": {"classes": [1, 1], "boxes": [box(0, 5, 10, 20), box(50, 50, 60, 60)], "scores": [0.6, 0.7]},
            },
        ],
    }
    result = tmp_path / "result.json"
    result.write_text(json.dumps(document))
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1,-1,-1,-1\n1,2,20,0,10,10,1,-1,-1,-1\n2,3,0,0,10,20,1,-1,-1,-1\n")
    return result, gt


def test_eval_result_file_json(files: tuple[Path, Path]) -> None:
    result, gt = files
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--json", "--per-frame"])
    assert out.exit_code == 0, out.output
    metrics = json.loads(out.output)
    assert metrics["count_mae"] == 0.5
    assert metrics["count_bias"] == 0.5
    assert metrics["precision"] == 0.5
    assert metrics["recall"] == pytest.approx(0.6667, abs=1e-4)
    assert metrics["f1"] == pytest.approx(0.5714, abs=1e-4)
    assert metrics["ap"] == pytest.approx(0.7333, abs=1e-4)
    assert metrics["threshold"] == 0.5
    assert [f["count"] for f in metrics["per_frame"]] == [2, 2]


def test_eval_result_file_threshold_frames_and_table(files: tuple[Path, Path]) -> None:
    result, gt = files
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--json", "--min-score", "0.25"])
    assert json.loads(out.output)["recall"] == 1.0
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--json", "--frames", "2"])
    metrics = json.loads(out.output)
    assert metrics["frames"] == 1 and metrics["count_mae"] == 1.0
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--ignore", "40,40,100,100"])
    assert out.exit_code == 0, out.output
    assert "count MAE" in out.output and "0.000" in out.output  # the stray detection's feet are ignored
    assert "AP50" in out.output


def test_eval_smoothing(files: tuple[Path, Path]) -> None:
    result, gt = files
    document = json.loads(result.read_text())
    document.update(fps=10.0, frame_ratio=1.0)
    result.write_text(json.dumps(document))
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--json", "--smooth", "0.3"])
    metrics = json.loads(out.output)
    # 0.3 s at 10 fps = a 3-frame median; counts 2, 2 stay 2, 2 (edges repeated): errors 0, +1 as before;
    # detection metrics unchanged
    assert metrics["count_smoothing"] == 3 and metrics["count_mae"] == 0.5 and metrics["precision"] == 0.5
    # by default, the smoothing the result file was written with
    document["count_smoothing"] = {"seconds": 0.5, "frames": 5}
    result.write_text(json.dumps(document))
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--json"])
    assert json.loads(out.output)["count_smoothing"] == 5
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--json", "--smooth", "0"])
    assert json.loads(out.output)["count_smoothing"] == 1
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--smooth", "-1"])
    assert out.exit_code == 2 and "--smooth" in out.output


def test_eval_errors(files: tuple[Path, Path], tmp_path: Path) -> None:
    result, gt = files
    runner = CliRunner()
    out = runner.invoke(cli, ["eval", "--gt", str(gt)])
    assert out.exit_code != 0 and "needs a SOURCE" in out.output
    out = runner.invoke(cli, ["eval", str(result), "--gt", str(tmp_path / "missing.txt")])
    assert out.exit_code == 2 and "does not exist" in out.output
    out = runner.invoke(cli, ["eval", str(result), "--gt", str(gt), "--ignore", "1,2,3"])
    assert out.exit_code == 2 and "x_min,y_min" in out.output
    out = runner.invoke(cli, ["eval", str(result), "--gt", str(gt), "--detector", "face"])
    assert out.exit_code == 2 and "no Face detections" in out.output


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom crowdcount.cli.main import cli\n"
        "r = CliRunner().invoke(cli, ['eval', '--help'])\nassert r.exit_code == 0, r.output\n"
        "assert 'tensorflow' not in sys.modules\nprint(r.output)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "--gt" in out.stdout


@pytest.mark.parametrize(
    ("damage", "track", "message"),
    [
        ("no frame_index", False, "(KeyError: 'frame_index')"),
        ("no boxes", False, "(KeyError: 'boxes')"),
        ("a box of 3 values", False, "(ValueError: setting an array element with a sequence"),
        ("3 boxes, 2 scores", False, "(ValueError: frame 1 has 3 boxes and 2 scores)"),
        ("fps not a number", False, "(ValueError: could not convert string to float: 'ten')"),
        ("frame_ratio null", False, "(TypeError: float() argument must be"),
        ("no frame_index", True, "(KeyError: 'frame_index')"),
        ("3 boxes, 1 track id", True, "(ValueError: frame 1 has 3 boxes and 1 track ids)"),
        ("a person without track_id", True, "(KeyError: 'track_id')"),
    ],
)
def test_eval_a_damaged_result_file_is_one_line(
    files: tuple[Path, Path], damage: str, track: bool, message: str
) -> None:
    result, gt = files
    document = json.loads(result.read_text())
    document.update(fps=10.0, frame_ratio=1.0, tracking={"people": [{"track_id": 1}]})
    for frame in document["frames"]:
        frame["Human"]["track_ids"] = list(range(1, len(frame["Human"]["boxes"]) + 1))  # one track a box
    first = document["frames"][0]
    if damage == "no frame_index":
        del first["frame_index"]
    elif damage == "no boxes":
        del first["Human"]["boxes"]
    elif damage == "a box of 3 values":
        first["Human"]["boxes"][0] = [0.1, 0.1, 0.2]
    elif damage == "3 boxes, 2 scores":
        first["Human"]["scores"] = [0.9, 0.8]
    elif damage == "fps not a number":
        document["fps"] = "ten"
    elif damage == "frame_ratio null":
        document["frame_ratio"] = None
    elif damage == "3 boxes, 1 track id":
        first["Human"]["track_ids"] = [1]
    else:
        document["tracking"]["people"] = [{"first_s": 0.0}]
    result.write_text(json.dumps(document))
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), *(["--track"] if track else [])])
    assert out.exit_code == 1, out.output  # a damaged input file, as a damaged video (README's exit codes)
    assert out.output.startswith(f"Error: result file {str(result)!r} is damaged {message}"), out.output
    assert out.output.count("\n") == 1
