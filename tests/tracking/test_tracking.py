"""Tracking, line and zone counting on synthetic videos of moving squares: exact ids, crossings and dwell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdcount.analyzer import FrameResult, VideoAnalyzer, to_document, write_csv
from crowdcount.analyzer.counting import CountingProcessor, Line, Zone, inside_polygon
from crowdcount.analyzer.processors import BELOW_THRESHOLD, FrameProcessor
from crowdcount.analyzer.tracking import TRACK_ID, TrackingProcessor
from crowdcount.detectors import Detections

from conftest import SquareDetector, write_moving


def analyse(video: Path, *processors: FrameProcessor, frame_ratio: float = 1.0) -> dict[str, Any]:
    return to_document(VideoAnalyzer([SquareDetector()], frame_ratio, processors=list(processors)).analyze(video))


def right(i: int) -> tuple[int, int]:
    return 4 + 4 * i, 10  # top row, left to right, 4 px a frame


def left(i: int) -> tuple[int, int]:
    return 132 - 4 * i, 70  # bottom row, right to left


def test_two_squares_keep_their_ids(tmp_path: Path) -> None:
    document = analyse(write_moving(tmp_path / "two.mp4", 30, [right, left]), TrackingProcessor())
    ids = [f["Human"]["track_ids"] for f in document["frames"]]
    assert len(ids) == 30
    # a track is confirmed on its second frame and then given its first sighting too: from the first frame on,
    # the top square is always track 1 and the bottom one track 2
    by_row = [
        {round(b[0], 1): t for b, t in zip(f["Human"]["boxes"], f["Human"]["track_ids"], strict=True)}
        for f in document["frames"]
    ]
    assert all(row == {round(10 / 120, 1): 1, round(70 / 120, 1): 2} for row in by_row)
    tracking = document["tracking"]
    assert tracking["unique_people"] == 2 and tracking["confirmed_tracks"] == 2
    assert tracking["per_frame"]["occupancy"] == [2] * 30
    assert [(p["track_id"], p["first_frame"], p["last_frame"], p["present_s"]) for p in tracking["people"]] == [
        (1, 1, 30, 3.0),
        (2, 1, 30, 3.0),
    ]
    assert document["processors"][0]["name"] == "tracking"


@pytest.mark.parametrize("ratio", [0.5, 0.2])
def test_tracking_with_a_frame_ratio_below_one(tmp_path: Path, ratio: float) -> None:
    # at 0.2 the squares move 20 px (almost their width) between analysed frames: the buffered IoU still matches
    document = analyse(write_moving(tmp_path / "two.mp4", 30, [right, left]), TrackingProcessor(), frame_ratio=ratio)
    assert document["tracking"]["unique_people"] == 2
    assert {t for f in document["frames"][1:] for t in f["Human"]["track_ids"]} == {1, 2}


def test_a_short_track_is_not_a_person(tmp_path: Path) -> None:
    def blip(i: int) -> tuple[int, int] | None:
        return (60, 70) if 10 <= i < 15 else None  # half a second

    document = analyse(write_moving(tmp_path / "blip.mp4", 30, [right, blip]), TrackingProcessor(min_track_s=1.0))
    assert document["tracking"]["confirmed_tracks"] == 2
    assert document["tracking"]["unique_people"] == 1


def crossing(i: int) -> tuple[int, int]:
    return 4 + 4 * i, 40  # left to right across the middle (feet at x = 16 + 4 i)


def back(i: int) -> tuple[int, int]:
    return 132 - 4 * i, 40


def test_line_counts_in_and_out_by_direction(tmp_path: Path) -> None:
    # a vertical line drawn top to bottom: walking down it, its right is the image's left, so left-to-right is "out"
    line = Line.parse("middle=0.5,0,0.5,1")
    counting = CountingProcessor([line])
    out_doc = analyse(write_moving(tmp_path / "a.mp4", 30, [crossing]), TrackingProcessor(), counting)
    (entry,) = out_doc["counting"]["lines"]
    assert (entry["name"], entry["points"], entry["in"], entry["out"]) == ("middle", [[80.0, 0.0], [80.0, 120.0]], 0, 1)
    # the feet (x = 16 + 4 i) pass x 80 + 2.4 (the hysteresis band) at i = 17: frame 18
    assert entry["crossings"] == [{"track_id": 1, "direction": "out", "frame_index": 18, "time_s": 1.7}]
    in_doc = analyse(write_moving(tmp_path / "b.mp4", 30, [back]), TrackingProcessor(), counting)
    assert [(x["in"], x["out"]) for x in in_doc["counting"]["lines"]] == [(1, 0)]


def test_crossing_beyond_the_end_of_a_line_does_not_count(tmp_path: Path) -> None:
    short = Line.parse("80,0,80,30")  # the square's feet are at y = 64, below its end
    document = analyse(
        write_moving(tmp_path / "a.mp4", 30, [crossing]), TrackingProcessor(), CountingProcessor([short])
    )
    assert (document["counting"]["lines"][0]["in"], document["counting"]["lines"][0]["out"]) == (0, 0)


def jitter(i: int) -> tuple[int, int]:
    """Walk right to the line at x = 80, stand on it shaking +-2 px for 20 frames, walk on."""
    if i < 14:
        return 4 + 4 * i, 40  # feet reach x = 72
    if i < 34:
        return 68 + (2 if i % 2 else -2), 40  # feet at 78 / 82, either side of the line
    return 68 + 4 * (i - 33), 40


@pytest.mark.parametrize(("hysteresis", "crossings"), [(0.1, 1), (0.0, 19)])
def test_a_person_standing_on_the_line_is_counted_once(tmp_path: Path, hysteresis: float, crossings: int) -> None:
    video = write_moving(tmp_path / "jitter.mp4", 45, [jitter])
    counting = CountingProcessor([Line.parse("80,0,80,120")], hysteresis=hysteresis)
    document = analyse(video, TrackingProcessor(), counting)
    (line,) = document["counting"]["lines"]
    assert len(line["crossings"]) == crossings  # without hysteresis every shake crosses
    assert line["out"] - line["in"] == 1


def test_zone_occupancy_and_dwell(tmp_path: Path) -> None:
    def visit(i: int) -> tuple[int, int]:
        if i < 25:
            return min(4 + 6 * i, 100), 40  # walk right, stop at x 100 (feet at 112)
        return 100 - 6 * (i - 24), 40  # walk back: feet inside (x >= 90) in frames 13-27

    zone = Zone.parse("shop=90,30,150,30,150,100,90,100")
    document = analyse(
        write_moving(tmp_path / "z.mp4", 30, [visit]), TrackingProcessor(), CountingProcessor([], [zone])
    )
    (entry,) = document["counting"]["zones"]
    assert entry["visitors"] == 1 and entry["max_occupancy"] == 1
    assert entry["people"] == [{"track_id": 1, "first_s": 1.3, "last_s": 2.7, "visits": 1, "dwell_s": 1.5}]
    assert document["counting"]["per_frame"]["zone:shop"] == [0] * 13 + [1] * 15 + [0] * 2
    assert entry["peak_frame_index"] == 14
    rows = write_csv(document, tmp_path / "z.csv").read_text().splitlines()
    assert rows[0] == "frame_index,timestamp_ms,Human,occupancy,zone:shop"
    assert rows[14] == "14,1300.0,1,1,1"


def test_inside_polygon_even_odd() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert inside_polygon(np.array([[5, 5], [15, 5], [-1, 5], [5, 9.9]]), square).tolist() == [True, False, False, True]


class ScoredDetector(SquareDetector):
    """Squares, the first of each frame scoring 0.3 (under the threshold), the others 0.9."""

    def _detect(self, frames):  # type: ignore[no-untyped-def]
        out = []
        for dets in super()._detect(frames):
            scores = np.full(len(dets), 0.9, np.float32)
            scores[:1] = 0.3
            out.append(Detections(dets.xyxy, scores, dets.class_id))
        return out


class Spy(FrameProcessor):
    name = "spy"

    def __init__(self, floors: dict[str, float]) -> None:
        self.score_floors = floors
        self.seen: list[list[float]] = []
        self.marks: list[list[bool]] = []

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        dets = frame.detections["Human"]
        self.seen.append(sorted(round(c, 2) for c in dets.confidence.tolist()))
        self.marks.append(dets.data.get(BELOW_THRESHOLD, np.zeros(len(dets), bool)).tolist())


def test_weak_boxes_reach_processors_that_ask_and_never_the_result(video_factory) -> None:
    video = video_factory(frames=4)  # 0, 1, 2, 3 squares
    spy = Spy({"Human": 0.1})
    document = to_document(VideoAnalyzer([ScoredDetector()], processors=[spy]).analyze(video))
    assert spy.seen == [[], [0.3], [0.3, 0.9], [0.3, 0.9, 0.9]]
    assert [sorted(m) for m in spy.marks] == [[], [True], [False, True], [False, False, True]]
    assert [f["Human"]["scores"] for f in document["frames"]] == [[], [], [0.9], [0.9, 0.9]]
    assert [f["Human"]["count"] for f in document["frames"]] == [0, 0, 1, 2]
    plain = Spy({})
    VideoAnalyzer([ScoredDetector()], processors=[plain]).analyze(video)
    assert plain.seen == [[], [], [0.9], [0.9, 0.9]] and plain.marks == [[], [], [False], [False, False]]


def test_tracker_recovers_weak_boxes_but_reports_only_strong_ones(tmp_path: Path) -> None:
    class Fading(SquareDetector):
        """The square scores 0.9, but 0.2 (under the 0.5 threshold) in frames 10-14."""

        def __init__(self) -> None:
            super().__init__()
            self.frame = 0

        def _detect(self, frames):  # type: ignore[no-untyped-def]
            out = []
            for dets in super()._detect(frames):
                score = 0.2 if 10 <= self.frame < 15 else 0.9
                out.append(Detections(dets.xyxy, np.full(len(dets), score), dets.class_id))
                self.frame += 1
            return out

    video = write_moving(tmp_path / "f.mp4", 30, [right])
    tracking = TrackingProcessor(high_score=0.5, lost_track_s=0.3)
    result = VideoAnalyzer([Fading()], processors=[tracking]).analyze(video)
    document = to_document(result)
    assert [len(f["Human"]["scores"]) for f in document["frames"]] == [1] * 10 + [0] * 5 + [1] * 15
    # one track throughout: the weak boxes kept it through 0.5 s, although it may only miss 0.3 s
    assert document["tracking"]["confirmed_tracks"] == 1
    assert document["tracking"]["per_frame"]["occupancy"] == [1] * 30
    assert {t for f in document["frames"] for t in f["Human"]["track_ids"]} == {1}
    assert TRACK_ID in result.frames[20].detections["Human"].data
