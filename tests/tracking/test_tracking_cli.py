"""``analyze --line/--zone/--annotate/--plot/--no-track`` and ``eval --track``: outputs and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.eval.groundtruth import GroundTruth, GroundTruthFrame
from crowdcount.eval.tracking import TrackRun, evaluate_tracking

from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_detectors")


def test_lines_zones_annotation_and_plot(tmp_path: Path, video_factory) -> None:
    video = video_factory("lobby.mp4", frames=10)
    code, out, err = run(
        "analyze", str(video), "-d", "squares", "--frame-ratio", "0.5", "-o", str(tmp_path / "r.json"),
        "--line", "door=0.5,0,0.5,1", "--zone", "0,0,80,0,80,120,0,120",
        "--annotate", str(tmp_path / "a.mp4"), "--plot", str(tmp_path / "p.png"), "--json",
    )  # fmt: skip
    assert code == 0, err
    (row,) = json.loads(out)["videos"]
    assert row["lines"] == [{"name": "door", "in": 0, "out": 0}]
    assert row["zones"][0]["name"] == "zone1"
    assert row["annotated_video"] == str(tmp_path / "a.mp4")
    document = json.loads((tmp_path / "r.json").read_text())
    assert [p["name"] for p in document["processors"]] == ["scenery", "tracking", "counting", "annotate"]
    assert document["annotate"]["frames_written"] == 5
    capture = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and capture.get(cv2.CAP_PROP_FPS) == 5.0
    capture.release()
    image = cv2.imread(str(tmp_path / "p.png"))
    assert image is not None and image.shape[1] == 1000


def test_no_track_leaves_tracking_out(tmp_path: Path, video_factory) -> None:
    code, _, err = run("analyze", str(video_factory(frames=4)), "-d", "squares", "--no-track", "-o", str(tmp_path))
    assert code == 0, err
    document = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert "tracking" not in document and "track_ids" not in document["frames"][0]["Human"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--line", "1,2,3"], "Error: --line '1,2,3': 3 numbers do not make x,y points (expected [NAME=]x1,y1,x2,y2"),
        (["--line", "a=1,2,x,4"], "Error: --line 'a=1,2,x,4': 'x' is not a number (expected [NAME=]x1,y1,x2,y2"),
        (["--line", "1,2,3,4,5,6"], "Error: --line '1,2,3,4,5,6': a line needs 2 points (4 numbers), got 3"),
        (["--line", "5,5,5,5"], "Error: --line '5,5,5,5': the two points are the same (a line needs a length)"),
        (["--line", "0,0,200,10"], "Error: --line '0,0,200,10': point (200, 10) lies outside the 160x120 frame of"),
        (["--line", "-1,0,10,10"], "Error: --line '-1,0,10,10': negative coordinates lie outside the frame"),
        (["--line", "a b=1,2,3,4"], "Error: --line 'a b=1,2,3,4': name 'a b' may hold only letters, digits"),
        (["--line", "a=0,0,1,1", "--line", "a=0,1,1,0"], "Error: --line: the name 'a' is given twice"),
        (["--zone", "0,0,10,10"], "Error: --zone '0,0,10,10': a zone needs at least 3 distinct points, got 2"),
        (["--zone", "0,0,5,5,10,10"], "Error: --zone '0,0,5,5,10,10': the polygon has zero area"),
        (["--zone", "0,0,10,10,10,0,0,10"], "Error: --zone '0,0,10,10,10,0,0,10': the polygon's edges cross"),
        (["--zone", "0,0,100,0,100,500"], "Error: --zone '0,0,100,0,100,500': point (100, 500) lies outside the"),
        (["--zone", "0,0,1,0,nan"], "Error: --zone '0,0,1,0,nan': 'nan' is not a finite number"),
        (
            ["--no-track", "--line", "0,0,1,1"],
            "Error: counting lines and zones needs tracked people, but tracking is off",
        ),
        (["--annotate", "out.gif"], "Error: --annotate 'out.gif' must end in one of .mp4, .m4v, .mov, .avi, .mkv"),
        (["--plot", "p.jpg"], "Error: --plot 'p.jpg' must end in one of .png, .svg, .pdf"),
    ],
)
def test_bad_lines_zones_and_outputs_fail_before_any_work(tmp_path: Path, video_factory, args, message) -> None:
    code, out, err = run("analyze", str(video_factory(frames=2)), "-d", "squares", "-o", str(tmp_path / "r"), *args)
    assert code == 2
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_unwritable_annotate_path_fails_before_analysis(tmp_path: Path, video_factory) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "sub" / "a.mp4"
    code, out, err = run("analyze", str(video_factory(frames=2)), "-d", "squares", "-o", str(tmp_path / "r.json"),
                         "--annotate", str(target))  # fmt: skip
    assert code == 2
    assert err.startswith(f"Error: --annotate: cannot write into {str(blocker / 'sub')!r}")
    assert out == "" and not (tmp_path / "r.json").exists()


def test_tracking_config_is_validated(tmp_path: Path, video_factory) -> None:
    config = tmp_path / "variables.json"
    config.write_text(json.dumps({"tracking": {"zones": ["0,0,1,1"]}}))
    code, _, err = run("analyze", str(video_factory(frames=2)), "-d", "squares", "--config", str(config))
    assert code == 2
    assert err.startswith("Error: tracking.zones '0,0,1,1': a zone needs at least 3 distinct points, got 2")
    config.write_text(json.dumps({"tracking": {"lines": "0,0,1,1"}}))
    code, _, err = run("analyze", str(video_factory(frames=2)), "-d", "squares", "--config", str(config))
    assert code == 2 and err.startswith("Error: config key 'tracking.lines' must be a list of strings")


def frame(boxes: list[list[float]], ids: list[int]) -> GroundTruthFrame:
    return GroundTruthFrame(np.array(boxes, float).reshape(-1, 4), np.zeros(len(boxes), bool), ids)


def test_mot_metrics_of_a_perfect_and_a_swapped_tracker() -> None:
    a, b = [0, 0, 10, 10], [50, 0, 60, 10]
    gt = GroundTruth({i: frame([a, b], [7, 8]) for i in range(1, 5)}, "gt")
    perfect = TrackRun({i: (np.array([a, b], float), np.array([1, 2])) for i in range(1, 5)}, [1, 2], "run")
    report = evaluate_tracking(perfect, gt)
    assert (report["MOTA"], report["IDF1"], report["ID_switches"], report["unique_people_error"]) == (1.0, 1.0, 0, 0)
    swapped = {i: (np.array([a, b], float), np.array([1, 2] if i < 3 else [2, 1])) for i in range(1, 5)}
    report = evaluate_tracking(TrackRun(swapped, [1, 2, 3], "run"), gt)
    assert report["ID_switches"] == 2 and report["MOTA"] == 0.75 and report["IDF1"] == 0.5
    assert report["unique_people"] == 2  # track 3 never appears in the evaluated frames


def scores(report: dict) -> tuple:  # type: ignore[type-arg]
    return report["MOTA"], report["MOTP"], report["IDF1"], report["IDP"], report["IDR"]


def test_mot_metrics_without_people_or_tracks_are_undefined_not_zero() -> None:
    a = [0, 0, 10, 10]
    empty = GroundTruth({i: frame([], []) for i in range(1, 5)}, "gt")
    tracked = TrackRun({i: (np.array([a], float), np.array([1])) for i in range(1, 5)}, [1], "run")
    report = evaluate_tracking(tracked, empty)  # nobody to track: 4 false boxes
    assert scores(report) == (None, None, 0.0, 0.0, None)
    assert report["FP"] == 4
    nothing = TrackRun({i: (np.zeros((0, 4)), np.zeros(0, int)) for i in range(1, 5)}, [], "run")
    report = evaluate_tracking(nothing, empty)
    assert scores(report) == (None,) * 5
    people = GroundTruth({i: frame([a], [7]) for i in range(1, 5)}, "gt")
    report = evaluate_tracking(nothing, people)  # everyone missed: defined, and 0
    assert scores(report) == (0.0, None, 0.0, None, 0.0)
