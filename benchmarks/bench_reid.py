"""The person embedder: its speed (crops a second, by batch size) and ``crowdcount find``'s accuracy on the
development clips.

    python benchmarks/bench_reid.py --speed                  # ms a crop at batch 1, 4, 16 (TFLite, 2 threads)
    python benchmarks/bench_reid.py --find [--clips pets09,s3mf1,mot17-09,mot17-02] [--sample-fps 8 | --frame-ratio R]

``--find`` uses the cached detections and vectors (``benchmarks/track_cache.py``) and the real tracker
(``tune_tracking.simulate``): for every annotated person seen in at least 10 annotated frames, the query is one
ground-truth crop of them (from the middle of their presence, embedded by the real model), searched in the
clip's tracks at each threshold. Reported, as the issue asks: whether the best match is that person (the
track's majority ground-truth id), the share of the person's annotated frames the matches cover (a matched box
on them, IoU >= 0.5), and the share of matched boxes that are them. A "stranger" query (a person of another
clip) gives the share of frames matched at all.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from track_cache import CLIPS, load_detections
from tune_tracking import simulate

from crowdcount.analyzer.tracking import decode_vector
from crowdcount.eval.groundtruth import read_mot
from crowdcount.eval.metrics import iou_matrix


def speed() -> None:
    from crowdcount.detectors.reid import build_person_embedder

    embedder = build_person_embedder(num_threads=2)
    crops = np.random.default_rng(0).integers(0, 256, (64, 256, 128, 3), dtype=np.uint8)
    embedder.embed_crops(crops[:2])
    print("| batch | ms a crop (best of 3) |\n|---|---|")
    for batch in (1, 4, 16):
        embedder.batch_size = batch
        best = min(_timed(embedder, crops) for _ in range(3))
        print(f"| {batch} | {best * 1000 / len(crops):.1f} |")


def _timed(embedder, crops) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    embedder.embed_crops(crops)
    return time.perf_counter() - start


def gt_query(clip, gt, person: int, embedder) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The vector of one ground-truth crop of ``person``, from the middle of their annotated frames."""
    import cv2

    frames = sorted(k for k, f in gt.frames.items() if f.ids is not None and person in f.ids.tolist())
    index = frames[len(frames) // 2]
    capture = cv2.VideoCapture(str(clip.video))
    for _ in range(index):
        _ok, frame = capture.read()
    capture.release()
    truth = gt.frames[index]
    box = truth.xyxy[truth.ids.tolist().index(person)]
    return embedder.embed_boxes(frame[..., ::-1].copy(), box[None])[0]


def find_accuracy(name: str, thresholds: list[float], frame_ratio: float, stranger: np.ndarray | None) -> None:
    from crowdcount.detectors.reid import build_person_embedder

    clip = CLIPS[name]
    gt = read_mot(clip.gt, scale=clip.gt_scale)
    keys = [k for k in gt.frames if isinstance(k, int) and (clip.last_frame is None or k <= clip.last_frame)]
    run, _processor = simulate(name, {"store_embeddings": True}, frame_ratio)
    vectors = {p["track_id"]: decode_vector(p["embedding"]) for p in run.tracking["people"] if "embedding" in p}
    # per analysed annotated frame: which ground-truth person each tracked box is (IoU >= 0.5, or None)
    truth_of: dict[tuple[int, int], int | None] = {}
    seen_frames: Counter[int] = Counter()
    majority: dict[int, Counter[int]] = {}
    for k in keys:
        if k not in run.frames:
            continue
        truth = gt.frames[k]
        people = truth.ids[~truth.ignore] if truth.ids is not None else np.zeros(0, int)
        seen_frames.update(people.tolist())
        xyxy, ids = run.frames[k]
        ious = iou_matrix(xyxy, truth.xyxy[~truth.ignore]) if len(xyxy) and len(people) else np.zeros((len(xyxy), 0))
        for d, track in enumerate(ids.tolist()):
            j = int(np.argmax(ious[d])) if ious.shape[1] else -1
            who = int(people[j]) if j >= 0 and ious[d, j] >= 0.5 else None
            truth_of[(k, d)] = who
            if who is not None:
                majority.setdefault(track, Counter())[who] += 1
    embedder = build_person_embedder(num_threads=2)
    queries = [p for p, n in seen_frames.items() if n >= 10]
    rows = []
    for person in queries:
        query = gt_query(clip, gt, person, embedder)
        scores = {t: float(v @ query) for t, v in vectors.items()}
        best = max(scores, key=scores.get) if scores else None
        best_right = best is not None and bool(majority.get(best)) and majority[best].most_common(1)[0][0] == person
        for threshold in thresholds:
            matched = {t for t, s in scores.items() if s >= threshold}
            hits = boxes = 0
            covered = set()
            for (k, d), who in truth_of.items():
                if int(run.frames[k][1][d]) in matched:
                    boxes += 1
                    if who == person:
                        hits += 1
                        covered.add(k)
            rows.append(
                (threshold, person, best_right, len(covered) / seen_frames[person], hits / boxes if boxes else None)
            )
    print(f"\n{name} (frame ratio {frame_ratio:g}, {len(queries)} people queried)")
    print("| threshold | best match right | coverage (mean) | precision (mean, of queries with a match) | no match |")
    print("|---|---|---|---|---|")
    for threshold in thresholds:
        mine = [r for r in rows if r[0] == threshold]
        precisions = [r[4] for r in mine if r[4] is not None]
        print(
            f"| {threshold:g} | {sum(r[2] for r in mine)}/{len(mine)} | {np.mean([r[3] for r in mine]):.2f} | "
            f"{np.mean(precisions) if precisions else float('nan'):.2f} | {sum(r[4] is None for r in mine)} |"
        )
    if stranger is not None:
        for threshold in thresholds:
            matched = {t for t, v in vectors.items() if float(v @ stranger) >= threshold}
            frames = {k for k, (_, ids) in run.frames.items() if set(ids.tolist()) & matched}
            print(f"stranger at {threshold:g}: {len(matched)} tracks, {len(frames)}/{len(run.frames)} frames matched")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--find", action="store_true")
    parser.add_argument("--clips", default="pets09,s3mf1,mot17-09,mot17-02")
    parser.add_argument("--thresholds", default="0.5,0.55,0.6,0.65,0.7")
    parser.add_argument("--frame-ratio", type=float, default=None, help="default: from --sample-fps")
    parser.add_argument("--sample-fps", type=float, default=8.0, help="analysed frames a second (the default)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.speed:
        speed()
    if args.find:
        from crowdcount.detectors.reid import build_person_embedder

        thresholds = [float(t) for t in args.thresholds.split(",")]
        for name in args.clips.split(","):
            other = CLIPS["mot17-09" if name.startswith("pets") or name == "s3mf1" else "pets09"]
            gt = read_mot(other.gt, scale=other.gt_scale)
            person = Counter(i for f in gt.frames.values() if f.ids is not None for i in f.ids.tolist()).most_common(1)
            stranger = gt_query(other, gt, person[0][0], build_person_embedder(num_threads=2))
            ratio = args.frame_ratio or min(1.0, args.sample_fps / float(load_detections(name)["fps"]))
            find_accuracy(name, thresholds, ratio, stranger)


if __name__ == "__main__":
    main()
