"""Ground-truth readers: MOTChallenge (conf 0, scaling) and dlib imglab XML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdcount.errors import ConfigError
from crowdcount.eval import parse_frames, parse_size, read_imglab, read_mot

MOT = """1,1,100,200,40,80,1,-1,-1,-1
1,2,700,300,60,90,0,-1,-1,-1
3,1,110,200,40,80,1,-1,-1,-1
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_mot_scale_and_conf0(tmp_path: Path) -> None:
    gt = read_mot(write(tmp_path, "gt.txt", MOT), scale=0.5)
    assert list(gt.frames) == [1, 2, 3]  # frame 2 has no rows: nobody there
    assert gt.frames[1].xyxy.tolist() == [[50, 100, 70, 140], [350, 150, 380, 195]]
    assert gt.frames[1].ignore.tolist() == [False, True]
    assert gt.frames[1].count == 1 and gt.frames[2].count == 0 and gt.frames[3].count == 1
    assert gt.total == 2 and gt.scale == 0.5 and gt.scale_reason == "given"


def test_read_mot_infers_annotation_size_when_boxes_overflow(tmp_path: Path) -> None:
    gt = read_mot(write(tmp_path, "gt.txt", MOT), video_size=(480, 360))
    assert gt.scale == pytest.approx(0.625)  # 760 wide boxes in a 4:3 video -> 768x576
    assert "768x576" in gt.scale_reason and gt.warnings
    # boxes that fit the video are taken as they are
    gt = read_mot(write(tmp_path, "small.txt", "1,1,10,10,20,40,1\n"), video_size=(480, 360))
    assert gt.scale == 1.0 and not gt.warnings


def test_read_mot_size_from_option_and_seqinfo(tmp_path: Path) -> None:
    gt = read_mot(write(tmp_path, "gt.txt", MOT), video_size=(480, 360), annotation_size=(960, 720))
    assert gt.scale == pytest.approx(0.5) and gt.scale_reason == "--gt-size"
    seq = tmp_path / "SEQ"
    (seq / "gt").mkdir(parents=True)
    write(seq, "seqinfo.ini", "[Sequence]\nname=SEQ\nimWidth=1920\nimHeight=1440\n")
    gt = read_mot(write(seq / "gt", "gt.txt", MOT), video_size=(480, 360))
    assert gt.scale == pytest.approx(0.25) and gt.scale_reason == "seqinfo.ini"
    with pytest.raises(ConfigError, match="aspect"):
        read_mot(write(tmp_path, "gt.txt", MOT), video_size=(480, 360), annotation_size=(1280, 720))


def test_read_mot_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_mot(tmp_path / "none.txt")
    with pytest.raises(ConfigError, match="line 1"):
        read_mot(write(tmp_path, "bad.txt", "1,2,3\n"))
    with pytest.raises(ConfigError, match="no rows"):
        read_mot(write(tmp_path, "empty.txt", "\n"))
    # float() reads nan and inf: a box there would match nothing, silently
    for value in ("nan", "inf", "-Infinity"):
        with pytest.raises(ConfigError, match=f"^gt.txt line 2: not numbers: '1,2,{value},10,20,40,1'$"):
            read_mot(write(tmp_path, "gt.txt", f"1,1,10,10,20,40,1\n1,2,{value},10,20,40,1\n"))


def test_read_imglab(tmp_path: Path) -> None:
    xml = """<?xml version='1.0'?><dataset><images>
      <image file='a.jpg'><box top='10' left='20' width='30' height='40'/>
        <box top='1' left='2' width='3' height='4' ignore='1'/></image>
      <image file='neg.jpg'></image>
    </images></dataset>"""
    gt = read_imglab(write(tmp_path, "faces.xml", xml))
    keys = list(gt.frames)
    assert [Path(str(k)).name for k in keys] == ["a.jpg", "neg.jpg"]
    assert Path(str(keys[0])).parent == tmp_path.resolve()
    assert gt.frames[keys[0]].xyxy.tolist() == [[20, 10, 50, 50], [2, 1, 5, 5]]
    assert gt.frames[keys[0]].ignore.tolist() == [False, True]
    assert gt.frames[keys[1]].count == 0 and gt.total == 1
    with pytest.raises(ConfigError):
        read_imglab(write(tmp_path, "x.xml", "<dataset/>"))
    for value in ("nan", "inf", "ten"):  # float() reads them: a box there would match nothing, silently
        bad = f"<dataset><images><image file='a.jpg'><box top='{value}' left='2' width='3' height='4'/></image>"
        with pytest.raises(ConfigError, match=r"a box of a.jpg lacks top/left/width/height numbers$"):
            read_imglab(write(tmp_path, "bad.xml", bad + "</images></dataset>"))


def test_parse_frames_and_size() -> None:
    assert parse_frames(None, [1, 2, 3]) == [1, 2, 3]
    assert parse_frames("2-3", range(1, 10)) == [2, 3]
    assert parse_frames("1,5-6", range(1, 10)) == [1, 5, 6]
    with pytest.raises(ConfigError):
        parse_frames("20-30", range(1, 10))
    # a wide range selects the annotated frames in it, without listing every number it spans
    assert parse_frames("5-99999999999999", range(1, 10)) == [5, 6, 7, 8, 9]
    assert parse_frames("0-1,8-1000000000000", [1, 2, 8, 9]) == [1, 8, 9]
    assert parse_size("768x576") == (768, 576)
    with pytest.raises(ConfigError):
        parse_size("768")


def test_pets09_ground_truth_file(shared_data: Path) -> None:
    gt = read_mot(shared_data / "pets09" / "gt_frames001-124.txt", video_size=(480, 360))
    assert gt.scale == pytest.approx(0.625)
    assert len(gt.frames) == 124 and gt.total == 676
    # nobody annotated has feet on the far footpath (above y = 70): the ignore rule drops no annotated person
    bottoms = np.concatenate([f.xyxy[:, 3] for f in gt.frames.values()])
    assert bottoms.min() > 70
