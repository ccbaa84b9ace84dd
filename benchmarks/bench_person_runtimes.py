#!/usr/bin/env python3
"""Speed of person-detection-0203 under each runtime, in one run, as ratios to OpenVINO reading the shipped
TFLite file (the default runtime on CPUs), at 480x352 and 960x544 (real frames: PETS09 and MOT17-09 from
``../shared/data``, resized).

    PYTHONPATH=. python benchmarks/bench_person_runtimes.py [--runs 20] [--threads 2] [--ir person-detection-0203.xml]

Rows (each the whole detector: network + post-processing, ``bgr -> [K, 5]``):

- ``openvino_tflite``: ``person_tf.PersonDetection0203TF("openvino")``, the default (the CPU plugin's default
  precision: bf16 on CPUs with AVX512-BF16 / AMX, else f32);
- ``openvino_saved_model``: OpenVINO reading the SavedModel, + the numpy post-processing;
- with ``--ir`` (the original IR, not shipped; MODELS.md): ``openvino_ir`` and ``openvino_ir_f32``, the full IR
  with its own post-processing at the default precision and at ``INFERENCE_PRECISION_HINT=f32``;
- ``tflite`` / ``saved_model``: ``person_tf.PersonDetection0203TF`` (TensorFlow Lite with XNNPACK, ``--threads``
  threads; TensorFlow, with its own thread pools: every core).

Median milliseconds a frame over ``--runs`` frames after 3 warm-up calls, the runtimes taking turns frame by
frame; ratios are what to compare (the
machine is shared): absolute times move with the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CLIPS = (("pets09/vtest.avi", (480, 352)), ("mot17/MOT17-09/MOT17-09-DPM-raw.mp4", (960, 544)))


def frames_of(path: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    capture.release()
    if not frames:
        sys.exit(f"cannot read {path}: is ../shared/data there?")
    return frames


def openvino_converted(path: Path, post: dict[str, Any], threads: int) -> Any:
    """OpenVINO reading a converted TensorFlow file, + the numpy post-processing: ``bgr -> [K, 5]``."""
    import openvino as ov

    from crowdcount.detectors.person_tf import postprocess

    core = ov.Core()
    model = core.read_model(str(path))
    compiled: dict[tuple[int, int], Any] = {}

    def run(bgr: np.ndarray) -> np.ndarray:
        key = bgr.shape[:2]
        if key not in compiled:
            m = model.clone()
            m.reshape({m.inputs[0].get_any_name(): [1, *key, 3]})
            compiled[key] = core.compile_model(
                m, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
            )
        out = compiled[key](bgr[None])
        maps = sorted((np.asarray(out[o]) for o in compiled[key].outputs), key=lambda x: -x.shape[1] * x.shape[2])
        return postprocess(maps, key[1], key[0], post)

    return run


def openvino_ir(xml: Path, threads: int, f32: bool) -> Any:
    """The full IR with its own post-processing (default precision, or f32 inference): ``bgr -> [K, 5]``."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    compiled: dict[tuple[int, int], Any] = {}

    def run(bgr: np.ndarray) -> np.ndarray:
        key = bgr.shape[:2]
        if key not in compiled:
            m = model.clone()
            m.reshape({m.inputs[0].get_any_name(): [1, 3, *key]})
            config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
            if f32:
                config["INFERENCE_PRECISION_HINT"] = "f32"
            compiled[key] = core.compile_model(m, "CPU", config)
        out = compiled[key](bgr.transpose(2, 0, 1)[None].astype(np.float32))
        return np.asarray(out[compiled[key].output("boxes")], np.float32).reshape(-1, 5)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--ir", type=Path, default=None, help="the original IR's .xml, for its rows")
    args = parser.parse_args()

    from crowdcount.detectors.person_tf import PersonDetection0203TF

    tflite = PersonDetection0203TF("tflite", num_threads=args.threads)
    saved = PersonDetection0203TF("saved_model", num_threads=args.threads)
    tflite.load()
    post = tflite.info["tensorflow"]["postprocess"]
    folder = tflite.folder
    runtimes = {
        "openvino_tflite": PersonDetection0203TF("openvino", num_threads=args.threads),
        "openvino_saved_model": openvino_converted(
            folder / tflite.info["tensorflow"]["saved_model"], post, args.threads
        ),
        "tflite": tflite,
        "saved_model": saved,
    }
    if args.ir is not None:
        runtimes["openvino_ir"] = openvino_ir(args.ir, args.threads, f32=False)
        runtimes["openvino_ir_f32"] = openvino_ir(args.ir, args.threads, f32=True)
    results: dict[str, dict[str, float]] = {}
    sizes = []
    for clip, size in CLIPS:
        frames = frames_of(args.data / clip, size, args.runs)
        label = f"{size[0]}x{size[1]}"
        sizes.append(label)
        for run in runtimes.values():
            for frame in frames[:3]:
                run(frame)
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        for frame in frames:  # round robin: a change in the machine's load hits every runtime alike
            for name, run in runtimes.items():
                start = time.perf_counter()
                run(frame)
                times[name].append(time.perf_counter() - start)
        for name in runtimes:
            results.setdefault(name, {})[label] = statistics.median(times[name]) * 1000
            print(f"  {name} {label}: {results[name][label]:.1f} ms", file=sys.stderr)
    print(
        f"person-detection-0203, {args.threads} threads, median ms a frame over {args.runs} frames"
        " (ratio to openvino_tflite, the default)"
    )
    print("| runtime | " + " | ".join(sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, row in results.items():
        cells = [f"{row[s]:.1f} ms ({row[s] / results['openvino_tflite'][s]:.2f}x)" for s in sizes]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
