"""Detections (and appearance vectors) per clip, cached under ``~/.cache/crowdcount-bench/tracks`` (or
``$BENCH_TRACK_CACHE``) so that tracking can be tuned and measured without re-running the detector.

    python benchmarks/track_cache.py [CLIP ...]      # fills the cache: detections, then embeddings

A clip's cache is ``<clip>-dets.npz``: ``index`` and ``timestamp_ms`` per analysed frame, and all boxes down to
score 0.1 (``xyxy`` pixels, ``score``) with ``offsets`` into them per frame; ``<clip>-emb.npz`` holds one
256-d ReID vector per box scoring at least 0.25 (``vectors``, float16, zeros for the others), in the same order.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# not CROWDCOUNT_*: crowdcount reads every such variable as a configuration override
CACHE = Path(os.environ.get("BENCH_TRACK_CACHE", Path.home() / ".cache" / "crowdcount-bench" / "tracks"))
FLOOR = 0.1
#: Boxes scoring under this get no vector (zeros) in the cache.
EMBED_SCORE = 0.25


@dataclass(frozen=True)
class Clip:
    """A development clip: its video, ground truth, the scale of its boxes, frames scored, ignore regions."""

    name: str
    video: Path
    gt: Path
    gt_scale: float
    last_frame: int | None
    ignore: str | None = None
    mot17: bool = False


CLIPS = {
    "pets09": Clip(
        "pets09", DATA / "pets09" / "vtest.avi", DATA / "pets09" / "gt_frames001-124.txt", 0.625, 124, "0,0,480,70"
    ),
    "s3mf1": Clip(
        "s3mf1", DATA / "pets09-s3mf1" / "s3mf1.avi", DATA / "pets09-s3mf1" / "gt.txt", 0.625, None, "0,0,480,70"
    ),
    "mot17-09": Clip(
        "mot17-09",
        DATA / "mot17" / "MOT17-09" / "MOT17-09-DPM-raw.mp4",
        DATA / "mot17" / "MOT17-09" / "gt.txt",
        0.5,
        None,
        mot17=True,
    ),
    "mot17-02": Clip(
        "mot17-02",
        DATA / "mot17" / "MOT17-02" / "MOT17-02-SDP-raw.mp4",
        DATA / "mot17" / "MOT17-02" / "gt.txt",
        0.5,
        None,
        mot17=True,
    ),
}


#: The whole of PETS09-S2L1 (795 frames, 19 people), where its full MOTChallenge ground truth is available
#: (not in ../shared/data; ``$BENCH_PETS09_GT``, see docs/tracking.md): a held-out check of whole-video
#: fragmentation (``pets09-all``), and its first 400 frames, for choosing settings that only long videos exercise
#: (merging people who come back: ``pets09-400``).
if os.environ.get("BENCH_PETS09_GT"):
    for _name, _last in (("pets09-all", None), ("pets09-400", 400)):
        CLIPS[_name] = Clip(
            _name, DATA / "pets09" / "vtest.avi", Path(os.environ["BENCH_PETS09_GT"]), 0.625, _last, "0,0,480,70"
        )


def dets_path(name: str) -> Path:
    return CACHE / f"{name}-dets.npz"


def emb_path(name: str) -> Path:
    return CACHE / f"{name}-emb.npz"


def cache_detections(clip: Clip) -> Path:
    """Run the default human detector over the whole clip (boxes down to :data:`FLOOR`) and save them."""
    from crowdcount.analyzer.video import FrameReader, probe_video
    from crowdcount.detectors import build_detector

    detector = build_detector("human")
    info = probe_video(clip.video)
    index, stamps, boxes, scores, offsets = [], [], [], [], [0]
    start = time.perf_counter()
    batch: list = []

    def flush() -> None:
        for frame, dets in zip(batch, detector.detect([f.rgb for f in batch], FLOOR), strict=True):
            index.append(frame.index)
            stamps.append(frame.timestamp_ms)
            boxes.append(dets.xyxy.astype(np.float32))
            scores.append(dets.confidence.astype(np.float32))
            offsets.append(offsets[-1] + len(dets))
        batch.clear()

    with FrameReader(info, 1.0) as reader:
        for frame in reader:
            batch.append(frame)
            if len(batch) == 8:
                flush()
        if batch:
            flush()
    out = dets_path(clip.name)
    np.savez_compressed(
        out,
        index=np.array(index, np.int64),
        timestamp_ms=np.array(stamps, np.float64),
        xyxy=np.concatenate(boxes).reshape(-1, 4),
        score=np.concatenate(scores),
        offsets=np.array(offsets, np.int64),
        fps=np.float64(info.fps),
        size=np.array([info.width, info.height]),
        detector=np.array(str(detector.describe())),
        threshold=np.float64(detector.min_detection_score),
    )
    print(f"{clip.name}: {len(index)} frames, {offsets[-1]} boxes in {time.perf_counter() - start:.0f}s -> {out}")
    return out


def load_detections(name: str) -> dict[str, np.ndarray]:
    with np.load(dets_path(name)) as data:
        return {k: data[k] for k in data.files}


def cache_embeddings(clip: Clip) -> Path:
    """One ReID vector per cached box (crops of the decoded frames, batched)."""
    from crowdcount.analyzer.video import FrameReader, probe_video
    from crowdcount.detectors.reid import build_person_embedder

    dets = load_detections(clip.name)
    embedder = build_person_embedder()
    info = probe_video(clip.video)
    vectors = np.zeros((len(dets["score"]), embedder.dim), np.float16)
    start = time.perf_counter()
    position = {int(i): k for k, i in enumerate(dets["index"])}
    with FrameReader(info, 1.0) as reader:
        for frame in reader:
            k = position.get(frame.index)
            if k is None:
                continue
            lo, hi = dets["offsets"][k], dets["offsets"][k + 1]
            rows = lo + np.flatnonzero(dets["score"][lo:hi] >= EMBED_SCORE)
            if len(rows):
                vectors[rows] = embedder.embed_boxes(frame.rgb, dets["xyxy"][rows])
    out = emb_path(clip.name)
    np.savez_compressed(out, vectors=vectors)
    print(f"{clip.name}: {len(vectors)} vectors in {time.perf_counter() - start:.0f}s -> {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--only", choices=["dets", "emb"], default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in args.clips:
        clip = CLIPS[name]
        if args.only != "emb" and not dets_path(name).exists():
            cache_detections(clip)
        if args.only != "dets" and not emb_path(name).exists():
            cache_embeddings(clip)


if __name__ == "__main__":
    main()
