from __future__ import annotations

from pathlib import Path

import pytest

from crowdcount.analyzer import FrameReader, FrameSampler, probe_video
from crowdcount.errors import VideoError


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (1.0, list(range(12))),
        (0.5, [0, 2, 4, 6, 8, 10]),
        (0.2, [0, 5, 10]),
        (0.3, [0, 4, 7, 10]),
        (0.1, [0, 10]),
    ],
)
def test_sampler_spreads_frames_evenly(ratio: float, expected: list[int]) -> None:
    sampler = FrameSampler(ratio)
    assert [i for i in range(12) if sampler(i)] == expected


def test_sampler_share_is_exact_over_long_runs() -> None:
    sampler = FrameSampler(0.29)
    assert sum(sampler(i) for i in range(10_000)) == 2900


@pytest.mark.parametrize("ratio", [0, -0.5, 1.01, float("nan"), "0.5", True])
def test_sampler_rejects_bad_ratios(ratio: object) -> None:
    with pytest.raises(ValueError, match="frame_ratio"):
        FrameSampler(ratio)  # type: ignore[arg-type]


def test_probe_reads_metadata(video_factory) -> None:
    info = probe_video(video_factory("a.mp4", frames=17, size=(160, 120), fps=12.5))
    assert (info.width, info.height, info.frame_count, info.fps) == (160, 120, 17, 12.5)
    assert info.codec in {"mp4v", "FMP4"}  # OpenCV names MPEG-4 part 2 FMP4
    assert info.duration_s == pytest.approx(17 / 12.5)


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="does not exist"):
        probe_video(tmp_path / "nope.mp4")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(VideoError, match="is empty"):
        probe_video(path)


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 100)
    with pytest.raises(VideoError, match="cannot be opened as a video|no decodable frames"):
        probe_video(path)


def test_zero_frame_video(video_factory) -> None:
    with pytest.raises(VideoError, match="no decodable frames|cannot be opened|is empty"):
        probe_video(video_factory("zero.avi", frames=0, fourcc="MJPG"))


def test_reader_yields_sampled_frames_with_indices_and_timestamps(video_factory) -> None:
    info = probe_video(video_factory("a.mp4", frames=11, fps=4.0))
    reader = FrameReader(info, frame_ratio=0.5, queue_size=2)
    frames = list(reader)
    assert [f.index for f in frames] == [1, 3, 5, 7, 9, 11]
    assert [f.timestamp_ms for f in frames] == [0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0]
    assert reader.frames_decoded == 11
    assert frames[0].rgb.shape == (120, 160, 3)


def test_reader_stops_early_without_hanging(video_factory) -> None:
    info = probe_video(video_factory("a.mp4", frames=40))
    reader = FrameReader(info, queue_size=1)
    for frame in reader:
        if frame.index == 3:
            break
    reader.close()
    assert not reader._thread.is_alive()


def test_a_decoder_that_cannot_open_the_video_fails_the_reader_instead_of_hanging_it(
    video_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from crowdcount.analyzer import video

    info = probe_video(video_factory("a.mp4", frames=3))

    def gone(path: object) -> None:  # e.g. the folder of an image sequence became unreadable after the probe
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(video, "open_capture", gone)
    outcome: list[BaseException | None] = []

    def consume() -> None:
        try:
            list(FrameReader(info))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(timeout=10)
    assert not consumer.is_alive(), "the reader waits forever for a decoder thread that died"
    (error,) = outcome
    assert isinstance(error, VideoError)
    assert str(error) == f"decoding {info.path!r} failed: [Errno 13] Permission denied"
