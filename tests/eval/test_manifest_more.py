"""``eval --manifest``: the options that a manifest's clips give themselves are refused, not ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--frames", "1-5"], "Error: --frames does not apply to --manifest (each clip gives its own 'frames')\n"),
        (["--gt-scale", "2"], "Error: --gt-scale does not apply to --manifest (each clip gives its own 'gt_scale')\n"),
        (["--ignore", "0,0,5,5"], "Error: --ignore does not apply to --manifest (each clip gives its own 'ignore')\n"),
        (
            ["--gt-size", "640x480"],
            "Error: --gt-size does not apply to --manifest (give each clip its 'gt_scale')\n",
        ),
        (
            ["--per-frame"],
            "Error: --per-frame does not apply to --manifest: it prints one row a clip "
            "(evaluate the clip alone for its frames)\n",
        ),
        (["--frame-ratio", "0.5"], "Error: --frame-ratio applies to --track on a video (leave it out)\n"),
    ],
)
def test_manifest_refuses_options_of_one_clip(tmp_path: Path, option: list[str], message: str) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"clips": [{"name": "a", "video": "v.mp4", "gt": "gt.txt"}]}))
    out = CliRunner().invoke(cli, ["eval", "--manifest", str(manifest), *option])
    assert out.exit_code == 2, out.output
    assert out.output == message


def test_every_clip_is_checked_before_the_detector_runs(
    tmp_path: Path, fake_detectors: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crowdcount.cli.eval as eval_cli

    from conftest import write_video

    ran: list[str] = []
    detect = eval_cli.detect_video
    monkeypatch.setattr(
        eval_cli, "detect_video", lambda video, *a, **k: ran.append(str(video)) or detect(video, *a, **k)
    )
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_video(tmp_path / name / "v.mp4", 4)
    (tmp_path / "a" / "gt.txt").write_text("1,1,0,0,10,10,1\n")
    (tmp_path / "b" / "gt.txt").write_text("1,1,0,0,10,10,1\n2,1,0,0,10\n")  # line 2: a column short
    clips = [{"name": n, "video": f"{n}/v.mp4", "gt": f"{n}/gt.txt"} for n in ("a", "b")]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"clips": clips}))
    out = CliRunner().invoke(cli, ["eval", "--manifest", str(manifest), "-d", "squares"])
    assert out.exit_code == 2, out.output
    assert out.output == (
        "Error: manifest clip 'b': gt.txt line 2: expected frame,id,left,top,width,height[,conf,...], "
        "got '2,1,0,0,10' (MOTChallenge ground truth is comma-separated)\n"
    )
    assert ran == []  # clip a was not measured for nothing
    (tmp_path / "b" / "gt.txt").write_text("1,1,0,0,10,10,1\n")
    out = CliRunner().invoke(cli, ["eval", "--manifest", str(manifest), "-d", "squares", "--json"])
    assert out.exit_code == 0, out.output
    assert ran == [str(tmp_path / "a" / "v.mp4"), str(tmp_path / "b" / "v.mp4")]
    assert [row["clip"] for row in json.loads(out.output)["dev"]["clips"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "mean"}, "manifest m.json clip 1: the name 'mean' is the table's row of means (rename the clip)"),
        ({"gt_scale": 1e999}, "manifest m.json clip 1: 'gt_scale' must be a positive number, got inf"),
        (
            {"ignore": ["0,0,1"]},
            "manifest m.json clip 1: ignore region '0,0,1' is not x_min,y_min,x_max,y_max (e.g. --ignore 0,0,480,70)",
        ),
    ],
)
def test_bad_clip_entries(tmp_path: Path, entry: dict, message: str) -> None:
    from crowdcount.errors import ConfigError
    from crowdcount.eval.manifest import load_manifest

    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,10,1\n")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"clips": [{"name": "a", "video": "v.mp4", "gt": "gt.txt", **entry}]}))
    with pytest.raises(ConfigError) as error:
        load_manifest(manifest)
    assert str(error.value) == message
