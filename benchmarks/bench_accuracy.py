#!/usr/bin/env python3
"""Accuracy of each human-detector preset on every annotated clip there is, development and held-out apart,
plus the end-to-end speed of ``analyze`` on a 480x360 video and two 960x540 ones (MOT17-09, and MOT17-13 from
``../shared/data/crowds``, whose small people turn the zoom on).

    PYTHONPATH=. python benchmarks/bench_accuracy.py                       # every preset, every clip, speed
    PYTHONPATH=. python benchmarks/bench_accuracy.py --presets accurate --no-speed
    PYTHONPATH=. python benchmarks/bench_accuracy.py --extra /work/extra   # + clips fetched from public repos
    PYTHONPATH=. python benchmarks/bench_accuracy.py --presets accurate,accurate:zoom=false  # a preset's variant

The protocol (docs/accuracy.md): settings are chosen on the ``dev`` clips only; the ``held-out`` clips are
measured, never chosen on. Every clip runs through ``crowdcount eval --manifest`` (the detector as ``analyze``
runs it: the preset's threshold, the scenery filter, the 1 s count median), and the table prints one row per
clip and the mean of each split.

Clips from ``../shared/data`` (research terms: evaluation only):

| clip | split | scene |
|---|---|---|
| pets09-s2l1 (frames 1-124) | dev | plaza, fixed camera, 480x360 |
| mot17-09 | dev | shopping street, fixed camera at eye level, 960x540 |
| mot17-04 | dev | crowded night street, high fixed camera (30 frames, 1920x1080 -> 960x540) |
| mot17-11 | dev | mall, moving camera (30 frames, 960x540) |
| pets09-s3mf1 | held-out | same plaza, other people, other day |
| mot17-02 | held-out | square, fixed camera, 31 people a frame, 960x540 |
| mot17-05 | held-out | street, camera carried at walking pace (30 frames, 640x480) |
| mot17-10 | held-out | night street, moving camera (30 frames, 960x540) |

With ``--extra DIR`` (a folder laid out as ``DIR/<seq>/img1/*.jpg`` + ``DIR/<seq>/gt/gt.txt``, and
``DIR/pets09-s2l1/gt.txt`` for the whole of PETS09-S2L1; where each came from: docs/accuracy.md):
``tud-stadtmitte`` (dev), ``pets09-s2l1-rest`` (frames 125-795, held-out) and ``tud-campus`` (held-out:
groups walking side by side).

MOT17's image folders are written once as MJPEG videos under ``--cache`` (default ``~/.cache/crowdcount-bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PRESETS = ("accurate", "nanodet", "fast")
COLUMNS = ("frames", "mean_gt_count", "count_mae", "count_bias", "precision", "recall", "ap", "fps")


def image_folder_video(folder: Path, out: Path, fps: float, scale: float = 1.0, frames: int | None = None) -> Path:
    """Write ``folder/*.jpg`` (sorted) as an MJPEG AVI (once)."""
    import cv2

    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("*.jpg"))[:frames]
    writer = None
    tmp = out.with_suffix(".part.avi")
    for file in files:
        img = cv2.imread(str(file))
        if scale != 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if writer is None:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (img.shape[1], img.shape[0]))
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
        writer.write(img)
    assert writer is not None, f"no images in {folder}"
    writer.release()
    tmp.rename(out)
    return out


def manifest(cache: Path, extra: Path | None) -> dict[str, Any]:
    """The clips that exist here, as an ``eval --manifest`` document."""
    clips: list[dict[str, Any]] = []
    pets = SHARED / "pets09"
    if (pets / "vtest.avi").is_file():
        clips.append(
            {
                "name": "pets09-s2l1",
                "video": str(pets / "vtest.avi"),
                "gt": str(pets / "gt_frames001-124.txt"),
                "gt_scale": 0.625,
                "ignore": ["0,0,480,70"],
                "split": "dev",
            }
        )
    mot = SHARED / "mot17"
    for seq, split, kind in (
        ("MOT17-09", "dev", "video"),
        ("MOT17-04", "dev", "images"),
        ("MOT17-11", "dev", "images"),
        ("MOT17-02", "held-out", "video"),
        ("MOT17-05", "held-out", "images"),
        ("MOT17-10", "held-out", "images"),
    ):
        folder = mot / seq
        if not (folder / "gt.txt").is_file():
            continue
        if kind == "video":
            video, scale = next(folder.glob("*.mp4")), 0.5
        else:
            hd = seq != "MOT17-05"
            video = image_folder_video(
                folder / "img1", cache / f"{seq}.avi", 14.0 if not hd else 30.0, 0.5 if hd else 1
            )
            scale = 0.5 if hd else 1.0
        clips.append(
            {"name": seq.lower(), "video": str(video), "gt": str(folder / "gt.txt"), "gt_scale": scale,
             "mot17": True, "split": split}
        )  # fmt: skip
    s3 = SHARED / "pets09-s3mf1"
    if (s3 / "s3mf1.avi").is_file():
        clips.append(
            {"name": "pets09-s3mf1", "video": str(s3 / "s3mf1.avi"), "gt": str(s3 / "gt.txt"), "gt_scale": 0.625,
             "split": "held-out"}
        )  # fmt: skip
    if extra is not None:
        if (extra / "pets09-s2l1" / "gt.txt").is_file() and (pets / "vtest.avi").is_file():
            clips.append(
                {"name": "pets09-s2l1-rest", "video": str(pets / "vtest.avi"),
                 "gt": str(extra / "pets09-s2l1" / "gt.txt"), "gt_scale": 0.625, "ignore": ["0,0,480,70"],
                 "frames": "125-795", "split": "held-out"}
            )  # fmt: skip
        for seq, name, split in (("tud-stadtmitte", "tud-stadtmitte", "dev"), ("tud-campus", "tud-campus", "held-out")):
            folder = extra / seq
            if (folder / "gt" / "gt.txt").is_file():
                video = image_folder_video(folder / "img1", cache / f"{seq}.avi", 25.0)
                clips.append({"name": name, "video": str(video), "gt": str(folder / "gt" / "gt.txt"), "gt_scale": 1.0,
                              "split": split})  # fmt: skip
    return {"clips": clips}


def variant_args(variant: str) -> list[str]:
    """``accurate`` or ``accurate:zoom=false:max_pixels=921600`` as ``--detector-arg`` options."""
    preset, *extra = variant.split(":")
    args = ["--detector-arg", f"human.preset={preset}"]
    for item in extra:
        args += ["--detector-arg", f"human.{item}"]
    return args


def variant_kwargs(variant: str) -> dict[str, Any]:
    """``accurate:zoom=false`` as detector arguments (values read as JSON where they parse)."""
    preset, *extra = variant.split(":")
    kwargs: dict[str, Any] = {"preset": preset}
    for item in extra:
        key, _, value = item.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def run_eval(manifest_path: Path, preset: str) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "crowdcount.cli.main", "eval", "--manifest", str(manifest_path), "--json",
        *variant_args(preset),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"eval failed for {preset}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def speed(preset: str, video: Path, frames: int) -> float:
    """End-to-end fps of ``analyze`` (decode, detect, scenery, track) over the first ``frames`` frames."""
    sys.path.insert(0, str(REPO))
    from crowdcount.analyzer import VideoAnalyzer
    from crowdcount.analyzer.pipeline import build_processors
    from crowdcount.config import DEFAULTS
    from crowdcount.detectors import build_detector

    detector = build_detector("human", variant_kwargs(preset))
    detector.load()
    analyzer = VideoAnalyzer([detector], 1.0, processors=build_processors(DEFAULTS["tracking"], [detector]))
    started = time.perf_counter()
    result = analyzer.analyze(video, last_frame=frames)
    return len(result.frames) / (time.perf_counter() - started)


def fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--presets",
        default=",".join(PRESETS),
        help="comma-separated presets, each optionally with detector arguments: accurate:zoom=false",
    )
    parser.add_argument("--extra", type=Path, default=None, help="folder of extra annotated clips (see the docstring)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "crowdcount-bench")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-accuracy", action="store_true", help="only the end-to-end speed")
    parser.add_argument("--repeat", type=int, default=1, help="speed runs per preset, interleaved")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = parser.parse_args()
    document = manifest(args.cache, args.extra)
    if not document["clips"]:
        raise SystemExit(f"no annotated clips found under {SHARED}")
    args.cache.mkdir(parents=True, exist_ok=True)
    manifest_path = args.cache / "manifest.json"
    manifest_path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    results: dict[str, Any] = {}
    print("| preset | clip | split | frames | people | count MAE | bias | precision | recall | AP50 | fps (detector) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for preset in [] if args.no_accuracy else args.presets.split(","):
        out = run_eval(manifest_path, preset)
        results[preset] = out
        for split in ("dev", "held-out"):
            if split not in out:
                continue
            for row in [*out[split]["clips"], {"clip": "**mean**", **out[split]["mean"]}]:
                print(
                    f"| {preset} | {row['clip']} | {split} | {row.get('frames', '')} | "
                    f"{fmt(row['mean_gt_count'], 1)} | "
                    f"{fmt(row['count_mae'], 2)} | {fmt(row['count_bias'], 2)} | {fmt(row['precision'], 3)} | "
                    f"{fmt(row['recall'], 3)} | {fmt(row['ap'], 3)} | {fmt(row['fps'], 1)} |"
                )
    if not args.no_speed:
        print("\n| preset | video | fps end to end (analyze, tracking on) |\n|---|---|---|")
        videos = [
            (SHARED / "pets09" / "vtest.avi", 300),
            (SHARED / "mot17" / "MOT17-09" / "MOT17-09-DPM-raw.mp4", 150),
            (SHARED / "crowds" / "MOT17-13-SDP-raw.h265", 150),  # small people: the zoom turns on
        ]
        for run in range(args.repeat):
            for preset in args.presets.split(","):
                for video, frames in videos:
                    if video.is_file():
                        fps = speed(preset, video, frames)
                        results.setdefault("speed", {}).setdefault(preset, {}).setdefault(video.name, []).append(fps)
                        print(f"| {preset} | {video.name} ({frames} frames, run {run + 1}) | {fps:.1f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
