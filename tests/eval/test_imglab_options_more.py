"""``eval --gt faces.xml``: the options of video ground truth are refused, not ignored (imglab boxes are in
each image's own pixels, and images have no frame numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--frames", "1-5"],
            "Error: --frames selects frames of a video, but imglab XML ground truth lists images "
            "(leave --frames out, or list fewer images in the XML file)\n",
        ),
        (
            ["--gt-scale", "0.5"],
            "Error: --gt-scale does not apply to imglab XML ground truth: its boxes are in each image's own pixels "
            "(leave --gt-scale out)\n",
        ),
        (
            ["--gt-size", "640x480"],
            "Error: --gt-size does not apply to imglab XML ground truth: its boxes are in each image's own pixels "
            "(leave --gt-size out)\n",
        ),
        (
            ["--frame-ratio", "0.5"],
            "Error: --frame-ratio applies to --track on a video (leave it out)\n",
        ),
    ],
)
def test_imglab_ground_truth_refuses_video_options(tmp_path: Path, option: list[str], message: str) -> None:
    (tmp_path / "a.png").write_bytes(b"")  # never read: the options are refused first
    xml = tmp_path / "faces.xml"
    xml.write_text("<dataset><images><image file='a.png'><box top='1' left='1' width='5' height='5'/></image>"
                   "</images></dataset>")  # fmt: skip
    out = CliRunner().invoke(cli, ["eval", "--gt", str(xml), *option])
    assert out.exit_code == 2, out.output
    assert out.output == message


def test_frame_ratio_with_track_on_a_result_file_is_refused(tmp_path: Path) -> None:
    result = tmp_path / "r.json"
    result.write_text('{"frames": []}')
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n")
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--track", "--frame-ratio", "0.5"])
    assert out.exit_code == 2, out.output
    assert out.output == (
        "Error: --frame-ratio applies to --track on a video: a result file was analysed at its own frame_ratio "
        "(leave it out)\n"
    )
