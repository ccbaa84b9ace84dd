from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdcount.analyzer import SCHEMA_VERSION, FrameResult, VideoAnalyzer, to_document, write_csv, write_json
from crowdcount.analyzer.counts import smooth_counts, smoothing_window
from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.detectors import Detections
from crowdcount.errors import ConfigError, VideoError

from conftest import FaceSquareDetector, SquareDetector, squares_in_frame


def test_every_frame_is_analysed_in_batches_with_a_final_partial_batch(video_factory) -> None:
    detector = SquareDetector(max_batch_size=4)
    result = VideoAnalyzer([detector], frame_ratio=1.0).analyze(video_factory(frames=10))
    assert detector.batches == [4, 4, 2]
    assert [f.index for f in result.frames] == list(range(1, 11))
    assert [len(f.detections["Human"]) for f in result.frames] == [squares_in_frame(i) for i in range(10)]
    assert result.frames_decoded == 10
    assert not result.truncated


def test_sampling_and_analyzer_batch_size(video_factory) -> None:
    detector = SquareDetector(max_batch_size=2)
    analyzer = VideoAnalyzer([detector], frame_ratio=0.2, max_batch_size=3)
    result = analyzer.analyze(video_factory(frames=23, fps=5.0))
    assert [f.index for f in result.frames] == [1, 6, 11, 16, 21]
    assert [f.timestamp_ms for f in result.frames] == [0.0, 1000.0, 2000.0, 3000.0, 4000.0]
    # the analyzer gathers 3 frames, each detector splits to its own limit of 2
    assert detector.batches == [2, 1, 2]
    assert result.frames_decoded == 23


def test_progress_reports_every_decoded_frame(video_factory) -> None:
    seen: list[tuple[int, int]] = []
    VideoAnalyzer([SquareDetector()], frame_ratio=0.25).analyze(
        video_factory(frames=10), progress=lambda n, total: seen.append((n, total))
    )
    assert sum(n for n, _ in seen) == 10
    assert {total for _, total in seen} == {10}


def test_models_load_once_across_videos(video_factory) -> None:
    detector = SquareDetector()
    analyzer = VideoAnalyzer([detector])
    analyzer.analyze(video_factory("a.mp4", frames=3))
    analyzer.analyze(video_factory("b.mp4", frames=3))
    assert detector.loads == 1


def test_result_document_keeps_the_seed_shape(video_factory) -> None:
    analyzer = VideoAnalyzer([SquareDetector(), FaceSquareDetector()], frame_ratio=0.5)
    document = to_document(analyzer.analyze(video_factory(frames=6, size=(160, 120), fps=10.0)))
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["fps"] == 10.0
    assert isinstance(document["codec_code"], int)
    assert document["video"]["width"] == 160 and document["video"]["frame_count"] == 6
    assert document["frame_ratio"] == 0.5
    assert [d["category"] for d in document["detectors"]] == ["Human", "Face"]
    frame = document["frames"][1]  # 1-based index 3 = 0-based frame 2: two squares
    assert frame["frame_index"] == 3 and frame["frame_timestamp"] == 200.0
    assert set(frame) == {"frame_index", "frame_timestamp", "Human", "Face"}
    assert frame["Human"]["classes"] == [1, 1]
    assert frame["Human"]["scores"] == [0.9, 0.9]
    assert frame["Human"]["count"] == 2
    assert document["count_smoothing"] == {"seconds": 0.0, "frames": 1}
    assert document["processors"] == []
    # the first square spans x 8..32, y 40..64 of a 160x120 frame: [ymin, xmin, ymax, xmax] normalised
    first = sorted(frame["Human"]["boxes"], key=lambda b: b[1])[0]
    assert first == pytest.approx([40 / 120, 8 / 160, 64 / 120, 32 / 160], abs=0.02)
    assert document["summary"]["Human"] == {
        "frames_analyzed": 3,
        "max_count": 2,
        "mean_count": 0.667,
        "peak_frame_index": 3,
        "peak_timestamp": 200.0,
        "total_detections": 2,
    }


def test_json_and_csv_files(tmp_path: Path, video_factory) -> None:
    document = to_document(VideoAnalyzer([SquareDetector()]).analyze(video_factory(frames=5)))
    json_path = write_json(document, tmp_path / "out" / "clip.json")
    assert json.loads(json_path.read_text()) == document
    csv_path = write_csv(document, tmp_path / "out" / "clip.csv")
    assert csv_path.read_text().splitlines() == [
        "frame_index,timestamp_ms,Human",
        "1,0.0,0",
        "2,100.0,1",
        "3,200.0,2",
        "4,300.0,3",
        "5,400.0,0",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.csv", "clip.json"]


def test_result_files_get_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    """Written through a temporary file (atomically), yet readable as the umask allows, like the annotated video and
    the plot beside them: mkstemp's 0600 left them unreadable to a web server or a colleague."""
    import os
    import stat

    document = {
        "detectors": [{"category": "Human"}],
        "frames": [{"frame_index": 1, "frame_timestamp": 0.0, "Human": {"scores": []}}],
    }
    old = os.umask(0o022)
    try:
        modes = [
            stat.S_IMODE(write(document, tmp_path / name).stat().st_mode)
            for write, name in ((write_json, "a.json"), (write_csv, "a.csv"))
        ]
        os.umask(0o077)
        modes.append(stat.S_IMODE(write_json(document, tmp_path / "b.json").stat().st_mode))
    finally:
        os.umask(old)
    assert [oct(m) for m in modes] == ["0o644", "0o644", "0o600"]


def test_truncated_video_is_analysed_as_far_as_it_decodes(tmp_path: Path, video_factory) -> None:
    full = video_factory("full.avi", frames=60, fourcc="MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    result = VideoAnalyzer([SquareDetector()]).analyze(cut)
    assert 0 < result.frames_decoded < 60
    assert result.truncated
    assert "truncated or corrupt" in result.warnings[0]
    assert len(result.frames) == result.frames_decoded


@pytest.mark.parametrize("ratio", [0, 1.5, -1])
def test_frame_ratio_out_of_range(ratio: float) -> None:
    with pytest.raises(ConfigError, match=r"'human_detection.frame_ratio' must be in \(0, 1\] or null"):
        VideoAnalyzer([SquareDetector()], frame_ratio=ratio)


@pytest.mark.parametrize(
    ("fps", "sample_fps", "ratio", "analysed"),
    [(10, 5, 0.5, [1, 3, 5, 7]), (10, 20, 1.0, list(range(1, 9))), (25, 8, 0.32, [1, 5, 8])],
)
def test_without_a_frame_ratio_the_share_of_frames_follows_the_video_frame_rate(
    video_factory, fps: float, sample_fps: float, ratio: float, analysed: list[int]
) -> None:
    analyzer = VideoAnalyzer([SquareDetector()], frame_ratio=None, sample_fps=sample_fps)
    document = to_document(analyzer.analyze(video_factory(frames=8, fps=fps)))
    assert document["frame_ratio"] == ratio
    assert [f["frame_index"] for f in document["frames"]] == analysed


@pytest.mark.parametrize("sample_fps", [None, 0, -2, True, "8"])
def test_a_bad_sample_rate_is_refused(sample_fps: Any) -> None:
    with pytest.raises(ConfigError, match=r"'human_detection.sample_fps' must be (a number|in \(0, 1000\])"):
        VideoAnalyzer([SquareDetector()], frame_ratio=None, sample_fps=sample_fps)


def test_two_detectors_of_one_category_are_refused() -> None:
    with pytest.raises(ConfigError, match="more than one detector reports category Human"):
        VideoAnalyzer([SquareDetector(), SquareDetector()])


def test_no_detectors() -> None:
    with pytest.raises(ConfigError, match="no detectors"):
        VideoAnalyzer([])


def test_bad_video_raises_video_error(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="does not exist"):
        VideoAnalyzer([SquareDetector()]).analyze(tmp_path / "missing.mp4")


def test_raw_hevc_stream_without_a_frame_count(data_dir: Path) -> None:
    detector = SquareDetector(max_batch_size=8)
    detector.check_rgb = False
    result = VideoAnalyzer([detector], frame_ratio=0.1).analyze(data_dir / "crowds" / "MOT17-13-SDP-raw.h265")
    document = to_document(result)
    assert document["video"]["frame_count"] == 0  # the container does not say
    assert document["video"]["frames_decoded"] == 750
    assert document["video"]["duration_s"] == 30.0
    assert len(document["frames"]) == 75
    assert not result.truncated


@pytest.mark.parametrize(
    ("span_s", "fps", "ratio", "window"),
    [
        (0.5, 10, 1, 5),
        (0.5, 25, 1, 13),
        (0.5, 30, 1, 15),
        (0.5, 10, 0.2, 1),
        (1.0, 10, 0.2, 3),
        (0, 30, 1, 1),
        (0.5, 0, 1, 1),
        (0.2, 10, 1, 3),
        (0.4, 10, 1, 5),
    ],
)
def test_smoothing_window_is_the_nearest_odd_number_of_analysed_frames(span_s, fps, ratio, window) -> None:
    assert smoothing_window(span_s, fps, ratio) == window


def test_smooth_counts_is_a_centred_median_with_repeated_edges() -> None:
    assert smooth_counts([0, 5, 0, 0, 3, 3, 3], 3).tolist() == [0, 0, 0, 0, 3, 3, 3]
    assert smooth_counts([1, 2, 3], 1).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="odd"):
        smooth_counts([1, 2], 2)


def test_count_smoothing_changes_counts_not_boxes(tmp_path: Path, video_factory) -> None:
    # squares per frame: 0 1 2 3 0 1 2 3 ...; a 0.3 s median at 10 fps is a 3-frame window
    analyzer = VideoAnalyzer([SquareDetector()], count_smoothing_s=0.3)
    document = to_document(analyzer.analyze(video_factory(frames=8, fps=10.0)))
    assert document["count_smoothing"] == {"seconds": 0.3, "frames": 3}
    assert [len(f["Human"]["scores"]) for f in document["frames"]] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [f["Human"]["count"] for f in document["frames"]] == [0, 1, 2, 2, 1, 1, 2, 3]
    assert document["summary"]["Human"]["max_count"] == 3
    assert document["summary"]["Human"]["mean_count"] == 1.5
    assert document["summary"]["Human"]["total_detections"] == 12
    rows = write_csv(document, tmp_path / "c.csv").read_text().splitlines()
    assert [r.split(",")[2] for r in rows[1:]] == ["0", "1", "2", "2", "1", "1", "2", "3"]


@pytest.mark.parametrize("bad", [-1, "0.5", True, 1e9])
def test_bad_count_smoothing_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigError, match="count_smoothing_s"):
        VideoAnalyzer([SquareDetector()], count_smoothing_s=bad)


class NumberingProcessor(FrameProcessor):
    """A test processor: numbers every detection in order of appearance, sees frames in order."""

    name = "numbering"
    frame_fields = {"number": "numbers"}  # noqa: RUF012

    def __init__(self) -> None:
        self.started: list[int] = []
        self.closed = 0
        self.indexes: list[int] = []
        self.next = 0

    def start(self, video, frame_ratio: float) -> None:
        self.started.append(video.frame_count)
        self.indexes = []
        self.next = 0

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        assert image.shape == (120, 160, 3)
        self.indexes.append(frame.index)
        dets = frame.detections["Human"]
        numbers = np.arange(self.next, self.next + len(dets))
        self.next += len(dets)
        frame.detections["Human"] = Detections(dets.xyxy, dets.confidence, dets.class_id, {"number": numbers})

    def finish(self) -> dict[str, Any]:
        return {"detections": self.next, "frames": len(self.indexes)}

    def close(self) -> None:
        self.closed += 1


def test_frame_processors_see_every_frame_in_order_and_add_a_section(video_factory) -> None:
    processor = NumberingProcessor()
    analyzer = VideoAnalyzer([SquareDetector(max_batch_size=3)], processors=[processor])
    document = to_document(analyzer.analyze(video_factory(frames=7)))
    assert processor.indexes == [1, 2, 3, 4, 5, 6, 7]
    assert document["numbering"] == {"detections": 9, "frames": 7}
    assert document["processors"] == [{"name": "numbering"}]
    assert [f["Human"]["numbers"] for f in document["frames"]] == [[], [0], [1, 2], [3, 4, 5], [], [6], [7, 8]]
    # reused across videos: state resets, closed once per video
    analyzer.analyze(video_factory("b.mp4", frames=3))
    assert processor.started == [7, 3] and processor.closed == 2 and processor.indexes == [1, 2, 3]


def test_frame_processors_are_closed_when_the_analysis_fails(video_factory) -> None:
    class Failing(NumberingProcessor):
        def process(self, frame: FrameResult, image: np.ndarray) -> None:
            raise RuntimeError("boom")

    processor = Failing()
    with pytest.raises(RuntimeError, match="boom"):
        VideoAnalyzer([SquareDetector()], processors=[processor]).analyze(video_factory(frames=3))
    assert processor.closed == 1


def test_processor_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match="numbering"):
        VideoAnalyzer([SquareDetector()], processors=[NumberingProcessor(), NumberingProcessor()])
