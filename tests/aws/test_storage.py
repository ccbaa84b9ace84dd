"""S3: streamed downloads with a size cap and guaranteed clean-up, result keys, result uploads."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crowdcount.aws.storage import (
    TEMP_PREFIX,
    Cancelled,
    downloaded,
    head_video,
    object_exists,
    remove_stale_temp_files,
    result_key,
    upload_result,
    video_stem,
)
from crowdcount.errors import VideoError

from .support import MockAws


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{TEMP_PREFIX}*"))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("videos/42/video/clip.mp4", "videos/42/human_detector/clip.json"),
        ("videos/42/clip.mp4", "videos/human_detector/clip.json"),
        ("clip.mp4", "human_detector/clip.json"),
        ("../../etc/passwd", "human_detector/passwd.json"),
        ("a/../../b/c/x.y.avi", "a/b/human_detector/x.y.json"),
        ("videos/1/video/.hidden", "videos/1/human_detector/.hidden.json"),
        ("videos/1/video/..", "videos/1/human_detector/video.json"),
    ],
)
def test_result_key_default_layout(key: str, expected: str) -> None:
    assert result_key(key, "human_detector", 1) == expected


def test_result_key_with_prefix() -> None:
    assert result_key("videos/42/video/clip.mp4", "human_detector", 42, "results/") == (
        "results/42/human_detector/clip.json"
    )
    assert video_stem("a/b/clip.final.mp4") == "clip.final"


def test_head_and_streamed_download(aws: MockAws, tiny_video: Path) -> None:
    key = aws.put_video(tiny_video, 1)
    obj = head_video(aws.s3, aws.bucket, key)
    assert obj.size == tiny_video.stat().st_size and obj.etag
    with downloaded(aws.s3, obj, max_bytes=10**9, temp_dir=str(aws.tmp_path)) as path:
        assert path.read_bytes() == tiny_video.read_bytes()
        assert path.parent == aws.tmp_path and path.name.startswith(TEMP_PREFIX)
        assert remove_stale_temp_files(str(aws.tmp_path)) == 0 and path.exists()  # ours, locked while in use
        assert path.suffix == ".mp4"
    assert not path.exists()


def test_temp_file_removed_when_the_job_fails(aws: MockAws, tiny_video: Path) -> None:
    obj = head_video(aws.s3, aws.bucket, aws.put_video(tiny_video, 1))
    with pytest.raises(RuntimeError), downloaded(aws.s3, obj, 10**9, str(aws.tmp_path)):
        raise RuntimeError("analysis blew up")
    assert temp_files(aws.tmp_path) == []


def test_size_cap_is_enforced_before_downloading(aws: MockAws, tiny_video: Path) -> None:
    obj = head_video(aws.s3, aws.bucket, aws.put_video(tiny_video, 1))
    with pytest.raises(VideoError, match="over the limit"), downloaded(aws.s3, obj, obj.size - 1, str(aws.tmp_path)):
        pass
    assert temp_files(aws.tmp_path) == []


def test_cancelled_download_removes_the_file(aws: MockAws, tiny_video: Path) -> None:
    obj = head_video(aws.s3, aws.bucket, aws.put_video(tiny_video, 1))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled), downloaded(aws.s3, obj, 10**9, str(aws.tmp_path), cancel):
        pass
    assert temp_files(aws.tmp_path) == []


def test_missing_object_is_a_video_error(aws: MockAws) -> None:
    with pytest.raises(VideoError, match="does not exist"):
        head_video(aws.s3, aws.bucket, "videos/1/video/nothing.mp4")


def test_hostile_key_is_never_a_local_path(aws: MockAws, tiny_video: Path) -> None:
    key = "../../../../tmp/evil;rm -rf ~.mp4"
    aws.s3.upload_file(str(tiny_video), aws.bucket, key)
    obj = head_video(aws.s3, aws.bucket, key)
    with downloaded(aws.s3, obj, 10**9, str(aws.tmp_path)) as path:
        assert path.parent == aws.tmp_path and "evil" not in path.name and path.suffix == ".mp4"
    assert result_key(key, "human_detector", 3) == "human_detector/evil;rm -rf ~.json"


def test_upload_result_and_exists(aws: MockAws) -> None:
    assert not object_exists(aws.s3, aws.bucket, "r/x.json")
    upload_result(aws.s3, aws.bucket, "r/x.json", '{"a": 1}')
    assert object_exists(aws.s3, aws.bucket, "r/x.json")
    head = aws.s3.head_object(Bucket=aws.bucket, Key="r/x.json")
    assert head["ContentType"] == "application/json"


def test_stale_temp_files_of_dead_workers_are_removed(tmp_path: Path) -> None:
    """A file is stale when nobody holds its lock, whatever PID its name says (every container's worker is PID 1:
    a PID check kept such files for ever)."""
    held = tmp_path / f"{TEMP_PREFIX}held.mp4"
    stale = tmp_path / f"{TEMP_PREFIX}1-abc.mp4"  # a killed container's worker: PID 1, alive here too
    other = tmp_path / "unrelated.mp4"
    for p in (held, stale, other):
        p.write_bytes(b"x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl, sys; f = open({str(held)!r}); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert remove_stale_temp_files(str(tmp_path)) == 1
        assert not stale.exists() and held.exists() and other.exists()
    finally:
        holder.communicate("")
    assert remove_stale_temp_files(str(tmp_path)) == 1 and not held.exists()  # its worker is gone
