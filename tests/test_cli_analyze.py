from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_detectors")


def test_analyze_writes_json_and_csv_and_prints_a_summary(tmp_path: Path, video_factory) -> None:
    video = video_factory("lobby.mp4", frames=8)
    code, out, err = run(
        "analyze",
        str(video),
        "-d",
        "squares",
        "--frame-ratio",
        "1",
        "-o",
        str(tmp_path / "r.json"),
        "--csv",
        str(tmp_path / "r.csv"),
        "--smooth",
        "0",
    )
    assert code == 0, err
    document = json.loads((tmp_path / "r.json").read_text())
    assert [len(f["Human"]["scores"]) for f in document["frames"]] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert document["count_smoothing"] == {"seconds": 0.0, "frames": 1}
    assert (tmp_path / "r.csv").read_text().splitlines()[:3] == [
        "frame_index,timestamp_ms,Human,occupancy",  # tracked people (tracking is on by default)
        "1,0.0,0,0",
        "2,100.0,1,0",
    ]
    assert "lobby.mp4" in out and "Human" in out
    assert err == ""


def test_analyze_reports_counts_as_a_one_second_median_by_default(tmp_path: Path, video_factory) -> None:
    video = video_factory("lobby.mp4", frames=8)  # 10 fps; the fake detector finds 0, 1, 2, 3, 0, 1, 2, 3
    code, _, err = run("analyze", str(video), "-d", "squares", "--frame-ratio", "1", "-o", str(tmp_path / "r.json"))
    assert code == 0, err
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["count_smoothing"] == {"seconds": 1.0, "frames": 11}
    # the median of 11 frames, the ends repeated: [0]*5 + counts + [3]*5
    assert [f["Human"]["count"] for f in document["frames"]] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [len(f["Human"]["scores"]) for f in document["frames"]] == [0, 1, 2, 3, 0, 1, 2, 3]


def test_analyze_json_summary_and_options(tmp_path: Path, video_factory) -> None:
    video = video_factory("a.mp4", frames=10)
    code, out, _ = run(
        "analyze",
        str(video),
        "-d",
        "squares",
        "-d",
        "face-squares",
        "--frame-ratio",
        "0.5",
        "--min-score",
        "0.95",
        "--batch-size",
        "3",
        "-o",
        str(tmp_path),
        "--json",
    )
    assert code == 0
    (row,) = json.loads(out)["videos"]
    assert row["ok"] is True and row["result_file"] == str(tmp_path / "a.json")
    # scores are 0.9, below --min-score 0.95: nothing is kept
    assert row["summary"]["Human"]["total_detections"] == 0
    assert row["summary"]["Face"]["frames_analyzed"] == 5
    document = json.loads((tmp_path / "a.json").read_text())
    assert document["detectors"][0]["arguments"] == {"min_detection_score": 0.95, "max_batch_size": 3}
    assert document["frame_ratio"] == 0.5


def test_many_videos_one_bad_the_rest_still_run(tmp_path: Path, video_factory) -> None:
    good = video_factory("good.mp4", frames=4)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    out_dir = tmp_path / "results"
    code, _, err = run(
        "analyze", str(bad), str(tmp_path / "missing.mp4"), str(good), "-d", "squares", "-o", str(out_dir)
    )
    assert code == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["good.json"]
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Error: ") and "bad.mp4" in lines[0]
    assert lines[1] == f"Error: {str(tmp_path / 'missing.mp4')!r} does not exist (check the path)"


def test_a_folder_of_videos(tmp_path: Path, video_factory) -> None:
    video_factory("b.mp4", frames=2)
    video_factory("a.avi", frames=2, fourcc="MJPG")
    (tmp_path / "readme.txt").write_text("skip me")
    code, out, _ = run("analyze", str(tmp_path), "-d", "squares", "-o", str(tmp_path / "out"), "--json")
    assert code == 0
    assert [Path(r["video"]).name for r in json.loads(out)["videos"]] == ["a.avi", "b.mp4"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-d", "pedestrian"], 2, "Error: unknown detector 'pedestrian' (valid detectors: face, face-squares, human,"),
        (
            ["-d", "squares", "--frame-ratio", "0"],
            2,
            "Error: Invalid value for '--frame-ratio': 0.0 is not in the range 0<x<=1",
        ),
        (["-d", "squares", "--detector-arg", "squares.size=3"], 2, "Error: detector 'squares' has no argument 'size'"),
        (["-d", "squares", "--detector-arg", "face.model_path=x"], 2, "Error: --detector-arg names detector 'face'"),
        (["-d", "squares", "--detector-arg", "oops"], 2, "Error: --detector-arg 'oops' is not DETECTOR.KEY=VALUE"),
    ],
)
def test_bad_options_are_one_line_errors(video_factory, args: list[str], code: int, message: str) -> None:
    exit_code, out, err = run("analyze", str(video_factory(frames=2)), *args)
    assert exit_code == code
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_bad_config_key(tmp_path: Path, video_factory) -> None:
    config = tmp_path / "variables.json"
    config.write_text(json.dumps({"human_detection": {"frame_rato": 0.5}}))
    code, _, err = run("analyze", str(video_factory(frames=2)), "--config", str(config))
    assert code == 2
    assert err.strip() == (
        "Error: unknown config key 'human_detection.frame_rato' (did you mean 'frame_ratio'? valid keys in "
        "'human_detection': detectors, frame_ratio, sample_fps, count_smoothing_s, max_batch_size, result_step, "
        "result_prefix)"
    )


def test_one_output_file_for_many_videos_is_refused(tmp_path: Path, video_factory) -> None:
    a, b = video_factory("a.mp4", frames=2), video_factory("b.mp4", frames=2)
    code, _, err = run("analyze", str(a), str(b), "-d", "squares", "-o", str(tmp_path / "one.json"))
    assert code == 2
    assert "is one file but 2 videos were given" in err


def test_no_videos_found(tmp_path: Path) -> None:
    code, _, err = run("analyze", str(tmp_path), "-d", "squares")
    assert code == 2
    assert err.startswith("Error: no videos found in")


def test_detectors_command_lists_arguments_and_models() -> None:
    code, out, _ = run("detectors", "--json")
    assert code == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["human"]["aliases"] == ["HumanDetector", "person"]
    assert "model_path" in entries["human"]["arguments"]
    assert entries["face"]["default_model"]["name"] == "centerface"  # CenterFace alone (docs/faces.md)


def test_help_does_not_import_tensorflow() -> None:
    code = "import sys; from crowdcount.cli.main import cli; print('tensorflow' in sys.modules)"
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-m", "crowdcount.cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "analyze" in out.stdout


def test_unwritable_output_fails_before_analysis(tmp_path: Path, video_factory) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = run("analyze", str(video_factory(frames=2)), "-d", "squares", "-o", str(blocker / "sub"))
    assert code == 2
    assert err.startswith(f"Error: --output: cannot write into {str(blocker / 'sub')!r}")
    assert out == ""


def test_a_model_that_cannot_load_is_one_error_before_any_video(tmp_path: Path, video_factory) -> None:
    model = tmp_path / "model.pb"
    model.write_bytes(b"\x00\x01 not a graph")
    a, b = video_factory("a.mp4", frames=2), video_factory("b.mp4", frames=2)
    code, out, err = run("analyze", str(a), str(b), "-d", "human", "--detector-arg", f"human.model_path={model}")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(model) in err
    assert out == ""
