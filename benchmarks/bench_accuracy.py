#!/usr/bin/env python3
"""Accuracy and speed of each human-detector preset on PETS09-S2L1 (../shared/data/pets09).

    PYTHONPATH=. python benchmarks/bench_accuracy.py                 # presets, accuracy + end-to-end speed
    PYTHONPATH=. python benchmarks/bench_accuracy.py --no-speed      # accuracy only (about a minute)
    PYTHONPATH=. python benchmarks/bench_accuracy.py --config accurate-320=input_size=320 --repeat 3

Accuracy: the detector runs on frames 1-124 (the annotated ones) at score >= 0.05; count MAE, bias,
precision / recall at the preset's threshold and AP50 (IoU 0.5) are reported on three frame sets: ``dev``
(1-62, the only frames any choice was ever compared on), ``held-out`` (63-124) and ``all``. People on the far
footpath (feet above y = 70) are not annotated and are ignored. ``MAE 1 s`` is the count MAE after the
default running median over 1 s (11 frames at 10 fps; what ``crowdcount analyze`` reports and ``crowdcount eval``
measures), ``count MAE`` the raw per-frame one (``--smooth 0``).

Speed: ``VideoAnalyzer`` with the default tracker (what ``crowdcount analyze`` runs) over the whole 795-frame
video, every frame (``frame_ratio`` 1), decoding included; ``--repeat`` interleaves the configurations so that
their ratio, not their absolute figure, is what to read on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdcount.analyzer import VideoAnalyzer  # noqa: E402
from crowdcount.analyzer.counts import smoothing_window  # noqa: E402
from crowdcount.analyzer.pipeline import build_processors  # noqa: E402
from crowdcount.config import DEFAULTS  # noqa: E402
from crowdcount.detectors import build_detector  # noqa: E402
from crowdcount.eval import (  # noqa: E402
    IgnoreRegion,
    detect_video,
    match_run,
    read_mot,
    smooth_counts,
    summarize_matches,
)

PRESETS: dict[str, dict[str, Any]] = {
    "accurate": {"preset": "accurate"},
    "fast": {"preset": "fast"},
    "ssdlite": {"preset": "ssdlite"},
    # the default until 2026-11-23 (third session), for comparison
    "square416": {"preset": "accurate", "input_size": 416, "keep_aspect": False, "min_detection_score": 0.4},
}
SPLITS = {"dev": range(1, 63), "held-out": range(63, 125), "all": range(1, 125)}
FAR_FOOTPATH = IgnoreRegion.parse("0,0,480,70")
#: The default count smoothing, in frames of this 10 fps video.
SMOOTH_FRAMES = smoothing_window(DEFAULTS["human_detection"]["count_smoothing_s"], 10.0, 1.0)


def data_dir() -> Path:
    env = os.environ.get("CROWDCOUNT_DATA_DIR")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=KEY=VALUE[,KEY=VALUE]`` -> (name, detector arguments); values as JSON where they parse."""
    name, _, rest = text.partition("=")
    args: dict[str, Any] = {}
    for pair in filter(None, rest.split(",")):
        key, _, raw = pair.partition("=")
        try:
            args[key] = json.loads(raw)
        except ValueError:
            args[key] = raw
    return name, args


def accuracy(video: Path, gt_path: Path, args: dict[str, Any]) -> dict[str, Any]:
    gt = read_mot(gt_path, video_size=(480, 360))
    detector = build_detector("human", args)
    run = detect_video(video, detector, list(range(1, 125)))
    out: dict[str, Any] = {"threshold": run.threshold}
    for split, keys in SPLITS.items():
        matches = match_run(run, gt, list(keys), 0.5, [FAR_FOOTPATH])
        report = summarize_matches(matches, run.threshold)
        smoothed = summarize_matches(
            matches, run.threshold, counts=smooth_counts([m.count(run.threshold) for m in matches], SMOOTH_FRAMES)
        )
        out[split] = {
            "count_mae": report.count_mae,
            "count_mae_smoothed": smoothed.count_mae,
            "count_bias": report.count_bias,
            "precision": report.precision,
            "recall": report.recall,
            "ap50": report.ap,
        }
    return out


def speed(video: Path, args: dict[str, Any]) -> float:
    detectors = [build_detector("human", {"max_batch_size": 5, **args})]
    analyzer = VideoAnalyzer(detectors, processors=build_processors(DEFAULTS["tracking"], detectors))
    analyzer.load()
    started = time.perf_counter()
    result = analyzer.analyze(video)
    return result.frames_decoded / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], metavar="NAME=KEY=VALUE,...", help="extra config")
    parser.add_argument("--only", action="append", default=[], help="run only these configurations")
    parser.add_argument("--repeat", type=int, default=1, help="speed runs per configuration (interleaved)")
    parser.add_argument("--no-speed", action="store_true", help="skip the end-to-end speed runs")
    parser.add_argument("--json", action="store_true", help="print JSON")
    opts = parser.parse_args()
    pets = data_dir() / "pets09"
    video, gt_path = pets / "vtest.avi", pets / "gt_frames001-124.txt"
    if not video.is_file() or not gt_path.is_file():
        print(f"PETS09 data not found in {pets} (set CROWDCOUNT_DATA_DIR)", file=sys.stderr)
        return 0
    configs = dict(PRESETS)
    configs.update(parse_config(c) for c in opts.config)
    if opts.only:
        configs = {k: v for k, v in configs.items() if k in opts.only}
    results: dict[str, dict[str, Any]] = {}
    for name, args in configs.items():
        results[name] = {"arguments": args, **accuracy(video, gt_path, args)}
    if not opts.no_speed:
        fps: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(opts.repeat):
            for name, args in configs.items():
                fps[name].append(speed(video, args))
        for name in configs:
            results[name]["fps"] = statistics.median(fps[name])
            results[name]["fps_runs"] = [round(f, 1) for f in fps[name]]
    if opts.json:
        print(json.dumps(results, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="human detector on PETS09-S2L1 frames 1-124 (480x360, IoU 0.5)")
    for column in ("config", "score", "frames", "count MAE", "MAE 1 s", "bias", "P", "R", "AP50", "fps"):
        table.add_column(column, justify="left" if column in ("config", "frames") else "right", no_wrap=True)
    for name, r in results.items():
        for i, split in enumerate(SPLITS):
            s = r[split]
            fps_text = f"{r['fps']:.1f}" if i == 0 and "fps" in r else ""
            table.add_row(
                name if i == 0 else "",
                f"{r['threshold']:g}" if i == 0 else "",
                split,
                f"{s['count_mae']:.2f}",
                f"{s['count_mae_smoothed']:.2f}",
                f"{s['count_bias']:+.2f}",
                f"{s['precision']:.2f}",
                f"{s['recall']:.2f}",
                f"{s['ap50']:.3f}",
                fps_text,
            )
    Console(width=120).print(table)
    if not opts.no_speed and opts.repeat > 1:
        print("fps per run:", {k: v["fps_runs"] for k, v in results.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
