"""Tracking accuracy on the development clips from cached detections and appearance vectors (no detector run):
MOTA, IDF1, ID switches, unique-people error per clip and setting.

    python benchmarks/track_cache.py                      # once: detections and vectors per clip
    python benchmarks/tune_tracking.py                    # the default settings, with and without appearance
    python benchmarks/tune_tracking.py --grid merge_threshold=0.55,0.6,0.65,0.7 --clips pets09,mot17-09

The tracker is the real :class:`TrackingProcessor` fed frame by frame as the analyzer feeds it (weak boxes
marked, then dropped after it); only the appearance model is replaced by a look-up of the cached vectors of the
same boxes (same crops, same model), so a run takes seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from track_cache import CLIPS, emb_path, load_detections

from crowdcount.analyzer.analyzer import FrameResult
from crowdcount.analyzer.processors import BELOW_THRESHOLD
from crowdcount.analyzer.runner import drop_weak as _drop_weak
from crowdcount.analyzer.tracking import TRACK_ID, TrackingProcessor
from crowdcount.analyzer.video import FrameSampler, VideoInfo, sample_ratio
from crowdcount.detectors import Detections
from crowdcount.eval.groundtruth import IgnoreRegion, read_mot
from crowdcount.eval.tracking import TrackRun, evaluate_tracking


class CachedEmbedder:
    """The cached vectors of the current frame's boxes, looked up by box."""

    name = "person-reid-0287"
    dim = 256

    def __init__(self, boxes: np.ndarray, vectors: np.ndarray) -> None:
        self.boxes, self.vectors = boxes, vectors
        self.lo = self.hi = 0
        self.calls = 0

    def embed_boxes(self, image: Any, xyxy: np.ndarray) -> np.ndarray:
        mine = self.boxes[self.lo : self.hi]
        rows = [int(np.flatnonzero(np.all(mine == box, axis=1))[0]) for box in np.asarray(xyxy, np.float32)]
        self.calls += 1
        return self.vectors[self.lo : self.hi][rows].astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "cached": True}


def simulate(name: str, settings: dict[str, Any], frame_ratio: float = 1.0) -> tuple[TrackRun, TrackingProcessor]:
    dets = load_detections(name)
    vectors = np.load(emb_path(name))["vectors"]
    threshold = float(dets["threshold"])
    embedder = CachedEmbedder(dets["xyxy"], vectors)
    processor = TrackingProcessor(high_score=threshold, embedder=embedder, **settings)
    width, height = (int(v) for v in dets["size"])
    processor.start(VideoInfo(name, width, height, float(dets["fps"]), len(dets["index"]), "", 0), frame_ratio)
    sampler = FrameSampler(frame_ratio)
    results = []
    started = time.perf_counter()
    for k, (index, stamp) in enumerate(zip(dets["index"], dets["timestamp_ms"], strict=True)):
        if not sampler(k):
            continue
        lo, hi = int(dets["offsets"][k]), int(dets["offsets"][k + 1])
        embedder.lo, embedder.hi = lo, hi
        score = dets["score"][lo:hi]
        found = Detections(
            dets["xyxy"][lo:hi], score, np.zeros(hi - lo, np.int32), {BELOW_THRESHOLD: score < threshold}
        )
        frame = FrameResult(int(index), float(stamp), {"Human": found})
        processor.process(frame, None)  # type: ignore[arg-type]
        frame.detections["Human"] = _drop_weak(frame.detections["Human"])
        results.append(frame)
    section = processor.finish()
    elapsed = time.perf_counter() - started
    frames = {}
    for frame in results:
        found = frame.detections["Human"]
        ids = np.asarray(found.data[TRACK_ID], np.int64)
        frames[frame.index] = (found.xyxy[ids > 0], ids[ids > 0])
    run = TrackRun(frames, [p["track_id"] for p in section["people"]], name, frame_ratio, elapsed, section)
    return run, processor


def evaluate(name: str, run: TrackRun) -> dict[str, Any]:
    clip = CLIPS[name]
    gt = read_mot(clip.gt, scale=clip.gt_scale)
    regions = [IgnoreRegion.parse(clip.ignore)] if clip.ignore else []
    keys = [k for k in gt.frames if isinstance(k, int) and (clip.last_frame is None or k <= clip.last_frame)]
    report = evaluate_tracking(run, gt, keys, 0.5, regions)
    return {
        "IDF1": report["IDF1"],
        "MOTA": report["MOTA"],
        "IDSW": report["ID_switches"],
        "people": report["unique_people"],
        "gt_people": report["gt_people"],
        "people_err": report["unique_people_error"],
        "all_people": run.tracking["unique_people"],  # over the whole video, also frames without ground truth
        "crops": (run.tracking.get("appearance") or {}).get("crops_embedded", 0),
        "frames": len(run.frames),
    }


def parse_grid(items: list[str]) -> list[dict[str, Any]]:
    axes = []
    for item in items:
        key, values = item.split("=", 1)
        axes.append([(key, json.loads(v)) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--grid", nargs="*", default=[], help="KEY=V1,V2,... (JSON values), crossed")
    parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE fixed for every run")
    parser.add_argument("--baseline", action="store_true", help="also run without appearance")
    parser.add_argument("--frame-ratio", type=float, default=1.0)
    parser.add_argument("--sample-fps", type=float, default=None, help="analysed frames a second (beats --frame-ratio)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    fixed = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    rows = []
    combos = parse_grid(args.grid)
    if args.baseline:
        combos = [{"appearance": False}, *combos]
    print(f"{'settings':60s} {'clip':9s} IDF1   MOTA   IDSW people(gt) all  crops/frame")
    for combo in combos:
        settings = {**fixed, **combo}
        for name in args.clips.split(","):
            ratio = args.frame_ratio
            if args.sample_fps:
                ratio = sample_ratio(float(load_detections(name)["fps"]), args.sample_fps)
            run, _ = simulate(name, settings, ratio)
            row = {"clip": name, "settings": settings, **evaluate(name, run)}
            rows.append(row)
            label = ",".join(f"{k}={v}" for k, v in combo.items()) or "default"
            print(
                f"{label:60s} {name:9s} {row['IDF1']:.3f}  {row['MOTA']:.3f}  {row['IDSW']:4d} "
                f"{row['people']:3d} ({row['gt_people']:3d}) {row['all_people']:4d} "
                f"{row['crops'] / max(1, row['frames']):.2f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
