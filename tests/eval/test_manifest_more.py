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
