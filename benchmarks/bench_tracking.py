"""Tracking: its cost in analyze fps, and its accuracy on PETS09-S2L1 at frame ratios 1, 0.5 and 0.2.

    python benchmarks/bench_tracking.py             # vtest.avi from ../shared/data (or the sample clip)
    python benchmarks/bench_tracking.py --quick     # the 150-frame sample clip, speed only

Prints two tables:
- ``VideoAnalyzer`` end-to-end fps of the default human detector with tracking (the default processors) and
  without, interleaved ``--repeats`` times (best of each), and their ratio (target >= 0.95), and the share of
  the tracked runs' time spent inside the tracker (steadier than the fps ratio on a busy shared machine);
- MOTA, IDF1, ID switches, unique-people error and tracked-occupancy MAE on PETS09-S2L1 frames 1-124 (all)
  and 63-124 (held out: the tracker's settings were chosen on frames 1-62), per frame ratio.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "pets09"
SAMPLE = REPO / "samples" / "vtest-15s.mp4"


SPENT = [0.0]


def timed(processors: list) -> list:
    """The processors, with the time spent in their ``process`` added up in ``SPENT``."""
    for processor in processors:
        inner = processor.process

        def process(frame, image, inner=inner) -> None:  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            inner(frame, image)
            SPENT[0] += time.perf_counter() - start

        processor.process = process
    return processors


def analyse(detector, processors, video: Path) -> tuple[int, float]:
    from crowdcount.analyzer import VideoAnalyzer, to_document

    analyzer = VideoAnalyzer([detector], frame_ratio=1.0, processors=processors)
    start = time.perf_counter()
    result = analyzer.analyze(video)
    to_document(result)
    return len(result.frames), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="sample clip, speed only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from rich.console import Console
    from rich.table import Table

    from crowdcount.analyzer.pipeline import build_processors
    from crowdcount.config import DEFAULTS
    from crowdcount.detectors import build_detector

    video = args.video or (SAMPLE if args.quick or not (DATA / "vtest.avi").exists() else DATA / "vtest.avi")
    detector = build_detector("human", {"max_batch_size": 8})
    detector.load()
    tracking = build_processors(DEFAULTS["tracking"], [detector])
    analyse(detector, tracking, SAMPLE)  # warm-up: imports, graph tracing
    with_t, without_t, shares = [], [], []
    for _ in range(args.repeats):  # interleaved, so load from elsewhere hits both sides alike
        n, seconds = analyse(detector, [], video)
        without_t.append(seconds)
        SPENT[0] = 0.0
        n, seconds = analyse(detector, timed(build_processors(DEFAULTS["tracking"], [detector])), video)
        with_t.append(seconds)
        shares.append(SPENT[0] / seconds)
    without_fps, with_fps = n / min(without_t), n / min(with_t)
    table = Table(title=f"tracking cost: {video.name}, {n} frames, default human detector, frame_ratio 1")
    for column in ("measure", "fps", "ratio", "target", "ok"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row("analyze without tracking", f"{without_fps:.1f}", "", "", "")
    ratio = with_fps / without_fps
    table.add_row(
        "analyze with tracking", f"{with_fps:.1f}", f"{ratio:.3f}", ">= 0.95", "yes" if ratio >= 0.95 else "NO"
    )
    share = sorted(shares)[len(shares) // 2]
    table.add_row("time inside the tracker (median share)", f"{100 * share:.1f}%", f"{1 - share:.3f}", ">= 0.95",
                  "yes" if 1 - share >= 0.95 else "NO")  # fmt: skip
    console = Console()
    console.print(table)

    if args.quick or not (DATA / "gt_frames001-124.txt").exists():
        return
    from crowdcount.eval import IgnoreRegion, read_mot
    from crowdcount.eval.tracking import evaluate_tracking, track_video

    gt = read_mot(DATA / "gt_frames001-124.txt", (480, 360), scale=0.625)
    regions = [IgnoreRegion.parse("0,0,480,70")]
    table = Table(title="tracking accuracy: PETS09-S2L1, default human detector + tracker")
    for column in ("frame ratio", "frames", "MOTA", "IDF1", "ID switches", "unique people (true 7)", "occupancy MAE"):
        table.add_column(column, justify="right")
    for ratio in (1.0, 0.5, 0.2):
        (processor,) = build_processors(DEFAULTS["tracking"], [detector])
        run = track_video(DATA / "vtest.avi", detector, processor, 124, ratio)
        for label, keys in (("1-124", range(1, 125)), ("63-124", range(63, 125))):
            r = evaluate_tracking(run, gt, list(keys), 0.5, regions)
            table.add_row(
                f"{ratio:g}",
                f"{label} ({r['frames_evaluated']})",
                f"{r['MOTA']:.3f}",
                f"{r['IDF1']:.3f}",
                str(r["ID_switches"]),
                f"{r['unique_people']} ({r['unique_people_error']:+d})" if label == "1-124" else "-",
                f"{r['occupancy_mae']:.2f}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
