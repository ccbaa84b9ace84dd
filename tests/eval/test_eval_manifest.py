"""``crowdcount eval --manifest``: several clips at once, dev and held-out apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.errors import ConfigError
from crowdcount.eval.manifest import evaluate_manifest, load_manifest, mean_row, read_clip_gt


def write(tmp_path: Path, clips: object) -> Path:
    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,20,1,1,1\n")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"clips": clips}))
    return path


def test_manifest_paths_are_relative_to_it(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "a", "video": "v.mp4", "gt": "gt.txt", "split": "held-out", "gt_scale": 0.5}])
    (clip,) = load_manifest(path)
    assert clip.video == tmp_path / "v.mp4" and clip.split == "held-out" and clip.gt_scale == 0.5


@pytest.mark.parametrize(
    ("clips", "message"),
    [
        ([], "no 'clips' list"),
        ([{"name": "a", "video": "v.mp4"}], "'gt' must be"),
        ([{"name": "a", "video": "nope.mp4", "gt": "gt.txt"}], "does not exist"),
        ([{"name": "a", "video": "v.mp4", "gt": "gt.txt", "split": "test"}], "'split' must be one of"),
        ([{"name": "a", "video": "v.mp4", "gt": "gt.txt", "gt_scale": -1}], "'gt_scale'"),
        ([{"name": "a", "video": "v.mp4", "gt": "gt.txt", "colour": 1}], "unknown keys colour"),
        ([{"name": "a", "video": "v.mp4", "gt": "gt.txt"}] * 2, "used twice"),
        # once an AttributeError traceback when the clip came to be evaluated, after the clips before it
        (
            [{"name": "a", "video": "v.mp4", "gt": "gt.txt", "frames": [1, 62]}],
            r"^manifest m.json clip 1: 'frames' must be text such as \"1-62\" or \"1,5,9\", got \[1, 62\]$",
        ),
        # text that is not a frame range: refused when the manifest is read, not after the clips before it ran
        (
            [
                {"name": "a", "video": "v.mp4", "gt": "gt.txt"},
                {"name": "b", "video": "v.mp4", "gt": "gt.txt", "frames": "1-62,abc"},
            ],
            r"^manifest m.json clip 2: frames '1-62,abc' is not like 1-62 or 1,5,9 \(e.g. --frames 63-124\)$",
        ),
        (
            [{"name": "a", "video": "v.mp4", "gt": "gt.txt", "frames": "62-1"}],
            r"^manifest m.json clip 1: frames '62-1': the range is empty$",
        ),
        (
            [{"name": "a", "video": "v.mp4", "gt": "gt.txt", "mot17": "no"}],
            r"^manifest m.json clip 1: 'mot17' must be true or false, got 'no'$",
        ),
    ],
)
def test_bad_manifests(tmp_path: Path, clips: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_manifest(write(tmp_path, clips))


def test_bad_manifest_is_one_line_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "a", "video": "v.mp4", "gt": "gt.txt", "split": "test"}])
    out = CliRunner().invoke(cli, ["eval", "--manifest", str(path)])
    assert out.exit_code == 2
    assert len(out.output.strip().splitlines()) == 1 and "'split' must be one of" in out.output
    out = CliRunner().invoke(cli, ["eval", "v.mp4", "--manifest", str(path)])
    assert out.exit_code == 2 and "leave SOURCE, --gt and --track out" in out.output
    out = CliRunner().invoke(cli, ["eval", "v.mp4"])
    assert out.exit_code == 2 and "give --gt FILE" in out.output


def test_mot17_classes(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text(
        "1,1,0,0,10,20,1,1,1\n"  # a pedestrian: counted
        "1,2,20,0,10,20,0,7,1\n"  # a static person: ignored
        "1,3,40,0,30,20,0,3,1\n"  # a car: dropped
        "1,4,80,0,10,20,0,1,0.1\n"  # a pedestrian with conf 0: ignored
    )
    (tmp_path / "v.mp4").write_bytes(b"x")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"clips": [{"name": "a", "video": "v.mp4", "gt": "gt.txt", "mot17": True}]}))
    (clip,) = load_manifest(path)
    frame = read_clip_gt(clip, (100, 100)).frames[1]
    assert frame.count == 1 and frame.ignore.tolist() == [False, True, True]
    assert frame.ids.tolist() == [1, 2, 4]


def test_mot17_ground_truth_is_read_as_read_mot_reads_it(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("# frame;id;l;t;w;h;conf;class;vis\n1;1;0;0;10;20;1;1;1\n1;2;20;0;10;20;0;7;1\n")
    (tmp_path / "v.mp4").write_bytes(b"x")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"clips": [{"name": "a", "video": "v.mp4", "gt": "gt.txt", "mot17": True}]}))
    (clip,) = load_manifest(path)
    frame = read_clip_gt(clip, (100, 100)).frames[1]
    assert frame.count == 1 and frame.ignore.tolist() == [False, True]
    gt.write_text("1,1,0,0,10,20,1,1,1\n1,2,20,0,10,20,1\n")
    with pytest.raises(ConfigError) as err:
        read_clip_gt(clip, (100, 100))
    assert str(err.value) == "gt.txt line 2: MOT17 ground truth needs frame,id,l,t,w,h,conf,class,..."


def test_rows_and_means() -> None:
    from crowdcount.eval.manifest import Clip

    clips = [
        Clip("a", Path("a"), Path("g")),
        Clip("b", Path("b"), Path("g"), "held-out"),
        Clip("c", Path("c"), Path("g")),
    ]
    rows = evaluate_manifest(clips, lambda clip: {"count_mae": {"a": 1.0, "b": 2.0, "c": 3.0}[clip.name], "ap": np.nan})
    assert [r["clip"] for r in rows["dev"]] == ["a", "c"] and [r["clip"] for r in rows["held-out"]] == ["b"]
    mean = mean_row(rows["dev"], ["count_mae", "ap"])
    assert mean["count_mae"] == 2.0 and np.isnan(mean["ap"])


@pytest.mark.real_model
@pytest.mark.needs_data
def test_manifest_on_real_clips(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    clips = [
        {"name": "pets", "video": str(shared_data / "pets09" / "vtest.avi"),
         "gt": str(shared_data / "pets09" / "gt_frames001-124.txt"), "gt_scale": 0.625, "ignore": ["0,0,480,70"],
         "frames": "1-20", "split": "dev"},
        {"name": "s3mf1", "video": str(shared_data / "pets09-s3mf1" / "s3mf1.avi"),
         "gt": str(shared_data / "pets09-s3mf1" / "gt.txt"), "gt_scale": 0.625, "frames": "1-20", "split": "held-out"},
    ]  # fmt: skip
    path.write_text(json.dumps({"clips": clips}))
    out = CliRunner().invoke(cli, ["eval", "--manifest", str(path), "--json"])
    assert out.exit_code == 0, out.output
    document = json.loads(out.output[out.output.index("{") :])
    assert [r["clip"] for r in document["dev"]["clips"]] == ["pets"]
    assert [r["clip"] for r in document["held-out"]["clips"]] == ["s3mf1"]
    for split in ("dev", "held-out"):
        row = document[split]["clips"][0]
        assert row["frames"] == 20 and row["count_mae"] <= 1.0 and row["ap"] >= 0.8, row
    table = CliRunner().invoke(cli, ["eval", "--manifest", str(path)])
    assert table.exit_code == 0 and "s3mf1" in table.output and "mean" in table.output
