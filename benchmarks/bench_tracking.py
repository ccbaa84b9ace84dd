"""Tracking: its cost in analyze fps (with and without appearance), and its accuracy on PETS09-S2L1.

    python benchmarks/bench_tracking.py             # vtest.avi from ../shared/data (or the sample clip)
    python benchmarks/bench_tracking.py --quick     # the 150-frame sample clip, speed only
    python benchmarks/bench_tracking.py --whole     # also: unique people over all 795 frames of vtest.avi

Prints two tables:
- end-to-end fps of the *default* ``crowdcount analyze`` (the config's detectors, frame ratio and tracking
  block) on 2 threads: without tracking, with ByteTrack only (``appearance`` off) and with appearance (the
  default), interleaved ``--repeats`` times (best of each), the ratios between them, and the crops embedded;
- MOTA, IDF1, ID switches, unique-people error and tracked-occupancy MAE on PETS09-S2L1 frames 1-124 (all)
  and 63-124, per frame ratio, with the default tracking block (appearance on).

Tuning over the development clips without the detector: ``benchmarks/tune_tracking.py``.
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


def analyse(detectors, processors, video: Path, block) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    from crowdcount.analyzer import VideoAnalyzer, to_document

    analyzer = VideoAnalyzer.from_config(block, detectors, processors)
    start = time.perf_counter()
    result = analyzer.analyze(video)
    to_document(result)
    return result.frames_decoded, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="sample clip, speed only")
    parser.add_argument("--whole", action="store_true", help="also unique people over the whole of vtest.avi")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from rich.console import Console
    from rich.table import Table

    from crowdcount.analyzer.pipeline import build_processors
    from crowdcount.config import DEFAULTS, build_detectors

    video = args.video or (SAMPLE if args.quick or not (DATA / "vtest.avi").exists() else DATA / "vtest.avi")
    block = DEFAULTS["human_detection"]
    detectors = build_detectors(block["detectors"])
    detector = next(d for d in detectors if d.category == "Human")
    plain_block = {**DEFAULTS["tracking"], "appearance": False}
    variants = {
        # the scenery filter runs in every variant (it is not the tracker's cost)
        "no tracking": lambda: build_processors({**DEFAULTS["tracking"], "enabled": False}, detectors),
        "ByteTrack only (appearance off)": lambda: build_processors(plain_block, detectors),
        "ByteTrack + appearance (default)": lambda: build_processors(DEFAULTS["tracking"], detectors),
    }
    analyse(detectors, variants["ByteTrack + appearance (default)"](), SAMPLE, block)  # warm-up: imports, models
    times: dict[str, list[float]] = {name: [] for name in variants}
    shares: dict[str, list[float]] = {name: [] for name in variants}
    crops = 0
    for _ in range(args.repeats):  # interleaved, so load from elsewhere hits every variant alike
        for name, make in variants.items():
            processors = timed(make())
            SPENT[0] = 0.0
            n, seconds = analyse(detectors, processors, video, block)
            times[name].append(seconds)
            shares[name].append(SPENT[0] / seconds)
            tracker = next((p for p in processors if getattr(p, "appearance", False)), None)  # after the scenery filter
            if tracker is not None:
                crops = tracker.embedded
    # a fixed frame_ratio, or (the default) sample_fps analysed frames per second of video
    ratio = block["frame_ratio"]
    sampling = f"frame ratio {ratio:g}" if ratio is not None else f"{block['sample_fps']:g} analysed frames a second"
    table = Table(
        title=f"default analyze: {video.name}, {n} frames decoded, {sampling}, "
        f"detectors {', '.join(d.name for d in detectors)}"
    )
    for column in ("variant", "fps (best)", "ratio to no tracking", "ratio to ByteTrack only", "time in tracker"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    fps = {name: n / min(t) for name, t in times.items()}
    for name in variants:
        table.add_row(
            name,
            f"{fps[name]:.1f}",
            f"{fps[name] / fps['no tracking']:.3f}",
            f"{fps[name] / fps['ByteTrack only (appearance off)']:.3f}" if name != "no tracking" else "",
            f"{100 * sorted(shares[name])[len(shares[name]) // 2]:.1f}%" if name != "no tracking" else "",
        )
    console = Console()
    console.print(table)
    console.print(f"crops embedded per run with appearance: {crops} ({crops / n:.2f} per decoded frame)")

    if args.whole and (DATA / "vtest.avi").exists():
        from crowdcount.analyzer import VideoAnalyzer

        (processor,) = build_processors(DEFAULTS["tracking"], [detector])
        result = VideoAnalyzer.from_config(block, [detector], [processor]).analyze(DATA / "vtest.avi")
        section = result.sections["tracking"]
        console.print(
            f"vtest.avi, all {result.frames_decoded} frames, default analyze: {section['unique_people']} unique "
            f"people (19 walk through), {section['appearance']['tracklets']} tracklets"
        )

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
        run = track_video(DATA / "vtest.avi", detector, build_processors(DEFAULTS["tracking"], [detector]), 124, ratio)
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
