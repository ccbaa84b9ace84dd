"""Image-sequence folders read as videos: MOTChallenge sequences and folders of numbered frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.analyzer import FrameReader, probe_video
from crowdcount.analyzer.files import find_videos
from crowdcount.analyzer.video import SEQUENCE_FPS, ImageSequence
from crowdcount.errors import VideoError

from conftest import SQUARE, run_cli, squares_in_frame, write_video


def frame(i: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """Frame ``i`` as ``write_video`` draws it (BGR), with ``i`` written into pixel (5, 5)'s blue value."""
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    for k in range(squares_in_frame(i)):
        x = 8 + k * (SQUARE + 12)
        image[40 : 40 + SQUARE, x : x + SQUARE] = (255, 255, 255)
    image[0:4, 0:4] = (0, 0, 255)
    image[5, 5] = (i * 10, 0, 0)
    return image


def write_frames(folder: Path, names: list[str], sizes: dict[int, tuple[int, int]] | None = None) -> Path:
    """Write frame ``i`` of :func:`frame` under ``names[i]`` (PNG: lossless, so pixel values survive)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), frame(i, (sizes or {}).get(i, (160, 120))))
    return folder


def mot_sequence(root: Path, name: str = "MOT-01", frames: int = 6, rate: str = "10", ext: str = ".png") -> Path:
    seq = root / name
    write_frames(seq / "img1", [f"{i + 1:06d}.png" for i in range(frames)])
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={rate}\nseqLength={frames}\nimWidth=160\nimHeight=120\nimExt={ext}\n"
    )
    return seq


def test_numbered_frames_are_read_in_the_order_of_their_numbers(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "export", [f"frame_{i + 1}.png" for i in range(11)])  # frame_10 after frame_9
    info = probe_video(folder)
    assert (info.width, info.height, info.fps, info.frame_count) == (160, 120, SEQUENCE_FPS, 11)
    assert info.path == str(folder) and info.codec == "images (png)"
    with FrameReader(info, frame_ratio=1.0) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(1, 12))
    assert [int(f.rgb[5, 5, 2]) for f in frames] == [i * 10 for i in range(11)]  # RGB: blue is the last channel
    assert [f.timestamp_ms for f in frames[:3]] == [0.0, 40.0, 80.0]


@pytest.mark.parametrize("ext", [".png", "png", ".PNG"])
def test_a_mot_sequence_is_found_from_its_folder_or_its_img1_at_its_frame_rate(tmp_path: Path, ext: str) -> None:
    seq = mot_sequence(tmp_path, ext=ext)
    for given in (seq, seq / "img1"):
        found = ImageSequence.find(given)
        assert found is not None
        assert (found.folder, found.fps, found.fps_given, len(found.files)) == (seq, 10.0, True, 6)
    assert probe_video(seq / "img1").path == str(seq)


@pytest.mark.parametrize(
    "names",
    [
        ["a.png", "b.png"],  # no numbers
        ["1.png", "2.jpg"],  # two formats
        ["cam1_001.png", "cam2_002.png"],  # names that differ in more than the frame number
        ["000001.png"],  # one image: a photo, not a sequence
    ],
)
def test_folders_that_are_not_sequences_are_refused_in_one_line(tmp_path: Path, names: list[str]) -> None:
    folder = write_frames(tmp_path / "photos", names)
    assert ImageSequence.find(folder) is None
    with pytest.raises(VideoError) as err:
        probe_video(folder)
    assert str(err.value) == (
        f"{str(folder)!r} is a folder, not a video or an image sequence (give a video file, or a folder of "
        "numbered frames (000001.jpg, ...) or a MOTChallenge sequence)"
    )


def test_a_frame_of_another_size_stops_the_video_with_its_name(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "seq", [f"{i:04d}.png" for i in range(4)], sizes={2: (80, 60)})
    with FrameReader(probe_video(folder)) as reader, pytest.raises(VideoError) as err:
        list(reader)
    assert str(err.value).startswith(f"{str(folder / '0002.png')!r} is 80x60, the sequence's first frame 160x120")


def test_folders_give_their_videos_and_sequences_each_once(tmp_path: Path) -> None:
    root = tmp_path / "footage"
    (root / "cam").mkdir(parents=True)
    write_video(root / "cam" / "door.mp4", 3)
    seq = mot_sequence(root / "MOT17", "MOT17-02")
    export = write_frames(root / "export", ["f_001.png", "f_002.png"])
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("x")
    assert find_videos([root]) == sorted([root / "cam" / "door.mp4", export, seq])
    assert find_videos([seq / "img1", seq]) == [seq]  # the same sequence given twice


@pytest.mark.usefixtures("fake_detectors")
def test_analyze_and_eval_take_a_mot_sequence(tmp_path: Path) -> None:
    seq = mot_sequence(tmp_path, frames=8)
    (seq / "gt" / "gt.txt").write_text(
        "".join(
            f"{i + 1},{k + 1},{8 + k * (SQUARE + 12) + 1},41,{SQUARE},{SQUARE},1,1,1\n"
            for i in range(8)
            for k in range(squares_in_frame(i))
        )
    )
    code, out, err = run_cli(
        "analyze",
        str(seq),
        "-d",
        "squares",
        "--smooth",
        "0",
        "--frame-ratio",
        "1",
        "--no-track",
        "-o",
        str(tmp_path / "out"),
    )
    assert code == 0, err
    document = json.loads((tmp_path / "out" / "MOT-01.json").read_text())
    assert document["video"]["name"] == "MOT-01" and document["video"]["fps"] == 10.0
    assert [f["Human"]["count"] for f in document["frames"]] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [f["frame_timestamp"] for f in document["frames"]][:2] == [0.0, 100.0]
    code, out, err = run_cli(
        "eval", str(seq), "--gt", str(seq / "gt" / "gt.txt"), "-d", "squares", "--smooth", "0", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["count_mae"], report["precision"], report["recall"]) == (0.0, 1.0, 1.0)
    code, out, err = run_cli("eval", str(seq), "-d", "squares", "--smooth", "0", "--json")  # its own gt/gt.txt
    assert code == 0 and err == f"ground truth: {seq / 'gt' / 'gt.txt'}\n"
    assert json.loads(out)["count_mae"] == 0.0
    (seq / "gt" / "gt.txt").rename(seq / "gt.txt")  # a copy that keeps it beside seqinfo.ini (../shared/data/mot17)
    code, out, err = run_cli("eval", str(seq), "-d", "squares", "--smooth", "0", "--json")
    assert code == 0 and err == f"ground truth: {seq / 'gt.txt'}\n"
    assert json.loads(out)["count_mae"] == 0.0
    (seq / "gt.txt").unlink()
    code, out, err = run_cli("eval", str(seq), "-d", "squares", "--smooth", "0", "--json")
    assert code == 2 and "missing ground truth" in err


def test_a_seqinfo_ini_beside_exported_frames_sets_their_frame_rate(tmp_path: Path) -> None:
    # what the 25 fps warning tells the user to write: [Sequence] frameRate=N in the frames' folder
    folder = write_frames(tmp_path / "export", [f"{i + 1:06d}.png" for i in range(3)])
    (folder / "seqinfo.ini").write_text("[Sequence]\nframeRate=10\n")
    found = ImageSequence.find(folder)
    assert found is not None
    assert (found.folder, found.fps, found.fps_given, [p.name for p in found.files]) == (
        folder,
        10.0,
        True,
        ["000001.png", "000002.png", "000003.png"],
    )
    info = probe_video(folder)
    assert (info.path, info.fps, info.frame_count) == (str(folder), 10.0, 3)
    assert find_videos([tmp_path]) == [folder]


def test_a_sequence_given_as_the_current_folder_is_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crowdcount.analyzer.files import plan_outputs

    seq = mot_sequence(tmp_path)
    for cwd, given in ((seq, "."), (seq / "img1", ".."), (seq / "img1", ".")):
        monkeypatch.chdir(cwd)
        (video,) = find_videos([given])
        assert video.name == "MOT-01"
        assert probe_video(given).to_dict()["name"] == "MOT-01"
        assert plan_outputs([video], tmp_path / "out", ".json", "--output") == [tmp_path / "out" / "MOT-01.json"]


def test_an_unreadable_folder_is_skipped_when_searching_and_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. lost+found at the root of a mounted disk (root's, mode 0700): listing it is "permission denied"
    root = tmp_path / "disk"
    (root / "cam").mkdir(parents=True)
    write_video(root / "cam" / "door.mp4", 3)
    locked = root / "lost+found"
    locked.mkdir()
    listing, checking = Path.iterdir, Path.is_file

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    def is_file(self: Path) -> bool:
        if self.parent == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return checking(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(Path, "is_file", is_file)
    assert ImageSequence.find(locked) is None
    assert find_videos([root]) == [root / "cam" / "door.mp4"]
    with pytest.raises(VideoError) as err:
        probe_video(locked)
    assert str(err.value).startswith(f"{str(locked)!r} is a folder, not a video or an image sequence")


def test_numbered_pictures_beside_videos_do_not_hide_the_videos(tmp_path: Path) -> None:
    # a camera's export: clips with a numbered thumbnail each; given as such and below another folder
    for root in (tmp_path / "export", tmp_path / "all" / "cam"):
        write_frames(root, ["thumb_001.png", "thumb_002.png"])
        write_video(root / "clip_001.mp4", 3)
        write_video(root / "clip_002.mp4", 3)
    assert find_videos([tmp_path / "export"]) == [
        tmp_path / "export" / "clip_001.mp4",
        tmp_path / "export" / "clip_002.mp4",
    ]
    cam = tmp_path / "all" / "cam"
    assert find_videos([tmp_path / "all"]) == [cam / "clip_001.mp4", cam / "clip_002.mp4"]


def test_a_seqinfo_ini_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "export", [f"{i + 1:06d}.png" for i in range(3)])
    (folder / "seqinfo.ini").write_text("[Sequence]\nframeRate=10\n", encoding="utf-8-sig")  # as Notepad saves it
    found = ImageSequence.find(folder)
    assert found is not None and (found.fps, found.fps_given) == (10.0, True)
