"""Live sources run without end: the tracker and the line/zone counter keep what their live outputs need and
nothing per frame, while counting what a video's result file would (a stream of synthetic boxes, no video)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from crowdcount.analyzer.counting import CountingProcessor, Line, Zone
from crowdcount.analyzer.processors import FORGET_AFTER_S
from crowdcount.analyzer.runner import FrameResult
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.analyzer.video import VideoInfo
from crowdcount.detectors import Detections

FPS = 8.0
IMAGE = np.zeros((480, 640, 3), np.uint8)


class PositionEmbedder:
    """Appearance = the row a person walks in: the people of one row look alike, but one leaves the frame at its
    right edge as the next enters at its left, too far to have walked there, so none is joined to another."""

    name = "position"
    dim = 16

    def embed_boxes(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        out = np.zeros((len(xyxy), self.dim), np.float32)
        for i, (_, y0, _, _) in enumerate(np.asarray(xyxy)):
            out[i, int(y0 // 80) % self.dim] = 1.0
        return out


def walkers(i: int) -> Detections:
    """Four rows of people walking left to right, one at a time in each row, a new one every 10 s."""
    boxes = []
    for row in range(4):
        step = (i + row * 20) % 80
        x = step * 7.0
        boxes.append([x, 100 + row * 80, x + 30, 170 + row * 80])
    xyxy = np.array(boxes, np.float32)
    return Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), np.zeros(len(xyxy), int))


def run(frames: int, live: bool, **tracking: Any) -> tuple[TrackingProcessor, CountingProcessor]:
    tracker = TrackingProcessor(high_score=0.5, **tracking)
    counting = CountingProcessor([Line.parse("gate=0.5,0,0.5,1")], [Zone.parse("left=0,0,0.25,0,0.25,1,0,1")])
    info = VideoInfo("cam", 640, 480, FPS, 0, "", 0)
    for processor in (tracker, counting):
        processor.live = live
        processor.start(info, 1.0)
    for i in range(frames):
        frame = FrameResult(i + 1, i * 1000.0 / FPS, {"Human": walkers(i)})
        tracker.process(frame, IMAGE)
        counting.process(frame, IMAGE)
    return tracker, counting


@pytest.mark.parametrize("appearance", [False, True])
def test_a_live_tracker_forgets_people_nobody_can_come_back_as(appearance: bool) -> None:
    frames = 12 * 80  # 120 s: 12 people a row walk through
    embedder = PositionEmbedder() if appearance else None
    live, live_counting = run(frames, True, appearance=appearance, embedder=embedder)
    video, video_counting = run(frames, False, appearance=appearance, embedder=embedder)
    section = video.finish()
    # the same people as the video's result file: 12 in the first row, 13 in the others (they start mid-walk)
    assert section["unique_people"] == 12 + 3 * 13
    assert live.unique_people() == section["unique_people"]
    assert live.tracks_so_far() == video.tracks_so_far() == 12 + 3 * 13
    # but only the people of the last seconds are kept, and no frame
    assert len(live._all) <= 8 and len(live._owner) <= 8 and len(live._parent) <= 8
    assert live._results == [] and live._frames == [] and len(live._present) == 1
    assert len(video._all) == 12 + 3 * 13
    assert live_counting.totals() == video_counting.totals()


def test_live_line_and_zone_counts_keep_no_history_and_forget_old_visitors() -> None:
    frames = int(FORGET_AFTER_S * FPS) + 12 * 80  # past the time after which visitors are forgotten
    live, counting = run(frames, True, appearance=False)
    _, video_counting = run(frames, False, appearance=False)
    totals = counting.totals()
    assert totals == video_counting.totals()
    assert totals["lines"]["gate"] == {"in": 0, "out": sum(1 for _ in range(4) for _ in range(frames // 80))}
    (line,) = counting._lines
    (zone,) = counting._zones
    assert line.crossings == [] and line.series == {"in": [], "out": []} and counting._frames == []
    assert len(zone.occupancy) == 1
    # 4 people every 10 s pass through the zone; those of the last FORGET_AFTER_S (and one sweep) are kept
    kept = 4 * (FORGET_AFTER_S + 10.0 + 10.0) / 10.0
    assert len(zone.visits) <= kept and len(counting._last_seen) <= kept
    assert totals["zones"]["left"]["visitors"] == 4 * frames // 80 == 288
    assert zone.past_visitors + len(set(zone.visits) | set(zone.open_visits)) == 288 and zone.past_visitors > 0
    assert len(live._all) <= 8


def test_live_pipelines_start_their_processors_live() -> None:
    from crowdcount.live.pipeline import LivePipelines

    pipelines = LivePipelines(lambda source: [TrackingProcessor(high_score=0.5, appearance=False)], {"cam": FPS})
    (tracker,) = pipelines.processors("cam", (640, 480))
    assert isinstance(tracker, TrackingProcessor) and tracker.live
    for i in range(3 * 80):
        tracker.process(FrameResult(i + 1, i * 1000.0 / FPS, {"Human": walkers(i)}), IMAGE)
    assert pipelines.totals("cam")["unique_people"] == tracker.unique_people() == 3 + 3 * 4
