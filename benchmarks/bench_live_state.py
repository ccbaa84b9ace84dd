#!/usr/bin/env python3
"""Live cameras never end: the state the frame processors keep, and their time a frame, over a long synthetic
stream, with the processors in live mode (what ``watch`` runs) and, in the same run, in video mode (what a
result file needs: every frame, every tracklet, every crossing).

    PYTHONPATH=. python benchmarks/bench_live_state.py [--hours 1] [--fps 8] [--people 4]

The stream: ``--people`` walkers at a time crossing a 640x480 frame (a new one every 10 s in each row), a line
and a zone, the tracker with appearance (a cheap stand-in embedder: the benchmark measures the processors'
bookkeeping, not the ReID model). Prints, at each tenth of the stream: the Python memory the processors hold
(tracemalloc), the milliseconds a frame of the last tenth, and the live/video ratio of both. Live mode should
stay flat; video mode grows with the stream (it is bounded by the video's length there).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from crowdcount.analyzer.counting import CountingProcessor, Line, Zone
from crowdcount.analyzer.runner import FrameResult
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.analyzer.video import VideoInfo
from crowdcount.detectors import Detections

IMAGE = np.zeros((480, 640, 3), np.uint8)


class RowEmbedder:
    """Appearance = the walker's row (people of a row look alike; they never meet)."""

    name = "rows"
    dim = 16

    def embed_boxes(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        out = np.zeros((len(xyxy), self.dim), np.float32)
        for i, (_, y0, _, _) in enumerate(np.asarray(xyxy)):
            out[i, int(y0 // 80) % self.dim] = 1.0
        return out


def walkers(i: int, people: int) -> Detections:
    boxes = []
    for row in range(people):
        x = ((i + row * 20) % 80) * 7.0
        y = 40 + (row % 5) * 85
        boxes.append([x, y, x + 30, y + 70])
    xyxy = np.array(boxes, np.float32)
    return Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), np.zeros(len(xyxy), int))


def run(frames: int, fps: float, people: int, live: bool) -> list[tuple[int, float, float, int]]:
    """(frame, MB held, ms a frame over the last tenth, unique people) at each tenth of the stream."""
    tracker = TrackingProcessor(high_score=0.5, embedder=RowEmbedder())
    counting = CountingProcessor([Line.parse("gate=0.5,0,0.5,1")], [Zone.parse("left=0,0,0.3,0,0.3,1,0,1")])
    for processor in (tracker, counting):
        processor.live = live
        processor.start(VideoInfo("cam", 640, 480, fps, 0, "", 0), 1.0)
    tracemalloc.start()
    rows = []
    step = max(1, frames // 10)
    started = time.perf_counter()
    for i in range(frames):
        frame = FrameResult(i + 1, i * 1000.0 / fps, {"Human": walkers(i, people)})
        tracker.process(frame, IMAGE)
        counting.process(frame, IMAGE)
        if (i + 1) % step == 0:
            held, _ = tracemalloc.get_traced_memory()
            now = time.perf_counter()
            rows.append((i + 1, held / 1e6, (now - started) * 1000.0 / step, tracker.unique_people()))
            started = now
    tracemalloc.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="stream length (default 1 hour)")
    parser.add_argument("--fps", type=float, default=8.0, help="analysed frames a second (default 8, watch's)")
    parser.add_argument("--people", type=int, default=4, help="walkers at a time (default 4)")
    args = parser.parse_args()
    frames = int(args.hours * 3600 * args.fps)
    live = run(frames, args.fps, args.people, live=True)
    video = run(frames, args.fps, args.people, live=False)
    print(f"{frames} frames ({args.hours:g} h at {args.fps:g} fps), {args.people} walkers at a time")
    print(
        "| stream time | live: MB held | video mode: MB held | live: ms a frame | video mode: ms a frame | "
        "ms ratio video/live | unique people (live, video) |"
    )
    print("|---|---|---|---|---|---|---|")
    for (n, mb_l, ms_l, up_l), (_, mb_v, ms_v, up_v) in zip(live, video, strict=True):
        print(
            f"| {n / args.fps / 60:.0f} min | {mb_l:.2f} | {mb_v:.2f} | {ms_l:.2f} | {ms_v:.2f} | "
            f"{ms_v / ms_l:.2f} | {up_l}, {up_v} |"
        )


if __name__ == "__main__":
    main()
