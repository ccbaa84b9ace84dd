"""More ground-truth reading: frame numbers past the video's end are refused before anything is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.errors import ConfigError
from crowdcount.eval import read_imglab, read_mot


def test_a_frame_far_past_the_video_is_refused_at_once(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n1000000000,2,0,0,10,10,1\n")
    with pytest.raises(ConfigError) as error:  # before: every frame up to 1e9 was built (it never returned)
        read_mot(gt, (100, 100), frame_count=795)
    assert str(error.value) == (
        "gt.txt line 2: frame 1000000000 is past the video's end (795 frames) "
        "(is this the ground truth of another video? frames are numbered from 1)"
    )


def test_a_little_past_an_estimated_frame_count_is_kept(tmp_path: Path) -> None:
    # a container's frame count may be an estimate: up to 10 % past it is read (and warned about when decoding)
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n105,2,0,0,10,10,1\n")
    assert list(read_mot(gt, (100, 100), frame_count=100).frames) == list(range(1, 106))
    gt.write_text("1,1,0,0,10,10,1\n121,2,0,0,10,10,1\n")
    with pytest.raises(ConfigError, match=r"^gt.txt line 2: frame 121 is past the video's end \(100 frames\)"):
        read_mot(gt, (100, 100), frame_count=100)


def test_seqinfo_sequence_length_is_exact(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nseqLength=100\nimWidth=100\nimHeight=100\n")
    gt = tmp_path / "gt" / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n100,2,0,0,10,10,1\n")
    assert len(read_mot(gt, (100, 100)).frames) == 100
    gt.write_text("1,1,0,0,10,10,1\n101,2,0,0,10,10,1\n")
    with pytest.raises(ConfigError, match=r"^gt.txt line 2: frame 101 is past the video's end \(100 frames"):
        read_mot(gt, (100, 100), frame_count=1000)


def test_without_a_frame_count_an_absurd_frame_is_refused(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1000000000,1,0,0,10,10,1\n")
    with pytest.raises(ConfigError, match=r"^gt.txt line 1: frame 1000000000 is past 1000000, the most a "):
        read_mot(gt, (100, 100))


def test_empty_frames_share_one_object(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n50000,2,0,0,10,10,1\n")
    frames = read_mot(gt, (100, 100)).frames
    assert len(frames) == 50000 and frames[2] is frames[49999] and frames[2].count == 0
    assert frames[50000].count == 1 and list(frames[50000].ids) == [2]


def test_eval_a_result_file_and_ground_truth_of_another_video(tmp_path: Path) -> None:
    document = {
        "video": {"width": 100, "height": 100, "frame_count": 2, "frames_decoded": 2},
        "detectors": [{"name": "human", "category": "Human", "arguments": {"min_detection_score": 0.5}}],
        "frames": [{"frame_index": i, "Human": {"boxes": [], "scores": [], "track_ids": []}} for i in (1, 2)],
        "tracking": {"people": []},
    }
    result = tmp_path / "result.json"
    result.write_text(json.dumps(document))
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n1000000000,2,0,0,10,10,1\n")
    for track in ([], ["--track"]):
        out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), *track])
        assert out.exit_code == 2, out.output
        assert out.output == (
            "Error: gt.txt line 2: frame 1000000000 is past the video's end (2 frames) "
            "(is this the ground truth of another video? frames are numbered from 1)\n"
        )


def test_a_byte_order_mark_is_read(tmp_path: Path) -> None:  # Windows editors write one
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n", encoding="utf-8-sig")
    assert read_mot(gt).frames[1].count == 1


@pytest.mark.parametrize("size", ["-10,10", "10,0"])
def test_a_box_without_area_is_refused(tmp_path: Path, size: str) -> None:
    # it could never be matched: a person counted and always missed
    gt = tmp_path / "gt.txt"
    gt.write_text(f"1,1,0,0,10,10,1\n# a comment\n2,1,20,20,{size},1\n")
    with pytest.raises(ConfigError) as error:
        read_mot(gt)
    assert str(error.value) == f"gt.txt line 3: width and height must be positive, got {size.replace(',', ', ')}"


def test_tracking_refuses_a_person_twice_in_a_frame(tmp_path: Path) -> None:
    document = {
        "video": {"width": 100, "height": 100},
        "detectors": [{"name": "human", "category": "Human", "arguments": {"min_detection_score": 0.5}}],
        "frames": [{"frame_index": 1, "Human": {"boxes": [], "scores": [], "track_ids": []}}],
        "tracking": {"people": []},
    }
    result = tmp_path / "result.json"
    result.write_text(json.dumps(document))
    gt = tmp_path / "gt.txt"
    gt.write_text("1,7,0,0,10,10,1\n1,7,20,0,10,10,1\n")
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--track"])
    assert out.exit_code == 2, out.output
    assert out.output == (
        f"Error: ground truth {str(gt)!r}: frame 1 has person 7 twice "
        "(tracking needs one box a person a frame: is it MOTChallenge ground truth?)\n"
    )


def test_imglab_an_image_listed_twice_is_refused(tmp_path: Path) -> None:
    # the second entry's boxes replaced the first's: faces lost without a word
    xml = tmp_path / "faces.xml"
    xml.write_text("<dataset><images><image file='a.jpg'><box top='1' left='1' width='5' height='5'/></image>"
                   "<image file='./a.jpg'/></images></dataset>")  # fmt: skip
    with pytest.raises(ConfigError) as error:
        read_imglab(xml)
    assert str(error.value) == (
        f"{str(xml)!r}: image 'a.jpg' is listed twice (as 'a.jpg' and './a.jpg') (list each image once, with all its "
        "boxes)"
    )


def test_imglab_a_box_without_area_is_refused(tmp_path: Path) -> None:
    xml = tmp_path / "faces.xml"
    xml.write_text("<dataset><images><image file='a.jpg'><box top='1' left='1' width='0' height='5'/></image>"
                   "</images></dataset>")  # fmt: skip
    with pytest.raises(ConfigError) as error:
        read_imglab(xml)
    assert str(error.value) == f"{str(xml)!r}: a box of a.jpg has width 0 and height 5: both must be positive"


def test_mot17_empty_frames_share_one_object(tmp_path: Path) -> None:
    from crowdcount.eval.manifest import Clip, read_clip_gt

    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,20,1,1,1\n1,2,20,0,10,20,0,7,1\n50000,3,0,0,10,20,1,1,1\n50000,4,40,0,30,20,0,3,1\n")
    frames = read_clip_gt(Clip("a", tmp_path / "v.mp4", gt, mot17=True), (100, 100)).frames
    assert len(frames) == 50000 and frames[2] is frames[49999] and len(frames[2]) == 0
    assert frames[1].ids.tolist() == [1, 2] and frames[1].ignore.tolist() == [False, True]
    assert frames[50000].ids.tolist() == [3] and frames[50000].count == 1  # the car (class 3) is dropped


def test_a_truncated_result_is_measured_up_to_its_container_frame_count(tmp_path: Path) -> None:
    # the video broke off after 2 frames but has 100: ground truth up to frame 50 is this video's
    document = {
        "video": {"width": 100, "height": 100, "frame_count": 100, "frames_decoded": 2, "truncated": True},
        "detectors": [{"name": "human", "category": "Human", "arguments": {"min_detection_score": 0.5}}],
        "frames": [{"frame_index": i, "Human": {"boxes": [], "scores": []}} for i in (1, 2)],
    }
    result = tmp_path / "result.json"
    result.write_text(json.dumps(document))
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,0,0,10,10,1\n50,2,0,0,10,10,1\n")
    out = CliRunner().invoke(cli, ["eval", str(result), "--gt", str(gt), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["frames"] == 2
    assert "Warning: 48 annotated frames have no detections in the source; skipped" in out.stderr
