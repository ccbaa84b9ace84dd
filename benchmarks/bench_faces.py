#!/usr/bin/env python3
"""Face recognition accuracy and speed of the embedders, on the real faces of ``../shared/data/faces``.

    python benchmarks/bench_faces.py                 # mobileface and, when installed, dlib
    python benchmarks/bench_faces.py --embedder mobileface

No public same-person pair set can be had offline here (see docs/faces.md), so the "same person" pairs are
each real face against itself in a degraded copy of its photo (scaled to 40-60 %, rotated by up to 8 degrees,
darkened or brightened, JPEG quality 35-60: what a camera frame does to a face), re-detected by MTCNN; the
"different people" pairs are every two distinct faces of the photos (each detected face is one person).
This measures robustness to capture conditions, not to ageing, expression or pose: it is an easier test than
LFW, so the thresholds are set from it and from the figures of ``../shared/notes/face-models.md``.

Prints, per embedder: verification AUC and accuracy at the embedder's match threshold, the best threshold,
identification (half the people enrolled from their original photo, every degraded face identified: right,
wrong, unknown; the other half must come out unknown), and ms per face.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("CROWDCOUNT_DATA_DIR", REPO.parent / "shared" / "data")) / "faces"


def degrade(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A degraded copy of an RGB photo and the 2x3 matrix mapping original pixels to it."""
    import cv2

    height, width = image.shape[:2]
    scale = rng.uniform(0.4, 0.6)
    angle = rng.uniform(-8, 8)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    size = (int(width * scale), int(height * scale))
    matrix[:, 2] += [size[0] / 2 - width / 2, size[1] / 2 - height / 2]  # keep the centre in the middle
    out = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT)
    gain, bias = rng.uniform(0.6, 1.3), rng.uniform(-25, 25)
    out = np.clip(out.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    quality = int(rng.integers(35, 61))
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    out = cv2.cvtColor(cv2.imdecode(buffer, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out, matrix


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the probability that a same pair scores above a different pair)."""
    pos, neg = scores[labels], scores[~labels]
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def collect(detector, copies: int, seed: int):
    """(photo index, face index, RGB image, Detections) of the originals and their degraded copies."""
    import cv2

    rng = np.random.default_rng(seed)
    originals, degraded = [], []
    photos = sorted(p for p in DATA.glob("*.jpg") if p.name != "dogs.jpg")
    for p_index, path in enumerate(photos):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        faces = detector.detect([image])[0]
        faces = faces[(faces.xyxy[:, 2] - faces.xyxy[:, 0]) >= 24]  # faces of at least 24 px
        if not len(faces):
            continue
        originals.append((p_index, image, faces))
        for _ in range(copies):
            copy, matrix = degrade(image, rng)
            found = detector.detect([copy])[0]
            centres = np.c_[(faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2, np.ones(len(faces))] @ matrix.T
            widths = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * np.hypot(*matrix[0, :2])
            mapping = []
            for j, box in enumerate(found.xyxy):
                centre = (box[:2] + box[2:]) / 2
                dist = np.linalg.norm(centres - centre, axis=1)
                k = int(np.argmin(dist))
                if dist[k] < 0.3 * widths[k]:
                    mapping.append((j, k))
            if mapping:
                js, ks = zip(*mapping, strict=True)
                degraded.append((p_index, copy, found[list(js)], list(ks)))
    return originals, degraded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", action="append", help="embedder name or path (repeatable)")
    parser.add_argument("--copies", type=int, default=3, help="degraded copies of each photo")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"no test data at {DATA}")
    from crowdcount.detectors import build_detector
    from crowdcount.detectors.embedders import build_embedder
    from crowdcount.errors import CrowdcountError

    names = args.embedder or ["mobileface", "dlib"]
    detector = build_detector("face", {"min_detection_score": 0.9})
    originals, degraded = collect(detector, args.copies, seed=0)
    n_people = sum(len(f) for _, _, f in originals)
    n_copies = sum(len(f) for _, _, f, _ in degraded)
    print(f"{n_people} people (faces >= 24 px) in {len(originals)} photos; {n_copies} degraded faces re-detected")
    rows = []
    for name in names:
        try:
            embedder = build_embedder(name)
            embedder.load()
        except CrowdcountError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        ref, ref_id = [], []
        for p_index, image, faces in originals:
            ref.append(embedder.embed(image, faces))
            ref_id += [(p_index, k) for k in range(len(faces))]
        started = time.perf_counter()
        probe, probe_id = [], []
        for p_index, image, faces, ks in degraded:
            probe.append(embedder.embed(image, faces))
            probe_id += [(p_index, k) for k in ks]
        ms = (time.perf_counter() - started) / max(n_copies, 1) * 1000
        ref_v, probe_v = np.concatenate(ref), np.concatenate(probe)
        ids = {pid: i for i, pid in enumerate(ref_id)}
        person = np.array([ids[pid] for pid in probe_id])
        sim = probe_v @ ref_v.T  # degraded x original
        same = np.zeros_like(sim, bool)
        same[np.arange(len(person)), person] = True
        # verification: every same pair; different pairs between distinct originals (upper triangle)
        diff_orig = (ref_v @ ref_v.T)[np.triu_indices(len(ref_v), 1)]
        scores = np.concatenate([sim[same], sim[~same], diff_orig])
        labels = np.concatenate([np.ones(same.sum(), bool), np.zeros((~same).sum() + len(diff_orig), bool)])
        auc = roc_auc(scores, labels)
        t = embedder.match_threshold
        acc = float(((scores >= t) == labels).mean())
        tpr = float((scores[labels] >= t).mean())
        fpr = float((scores[~labels] >= t).mean())
        grid = np.linspace(-0.2, 1.0, 241)
        accs = [((scores >= g) == labels).mean() for g in grid]
        best = float(grid[int(np.argmax(accs))])
        # identification: enrol the even-indexed people, identify every degraded face
        enrolled = np.arange(len(ref_v)) % 2 == 0
        gallery = ref_v[enrolled]
        gallery_ids = np.flatnonzero(enrolled)
        g_sim = probe_v @ gallery.T
        top = g_sim.argmax(axis=1)
        top_sim = g_sim.max(axis=1)
        answer = np.where(top_sim >= t, gallery_ids[top], -1)
        is_enrolled = enrolled[person]
        right = int((answer[is_enrolled] == person[is_enrolled]).sum())
        wrong = int(((answer[is_enrolled] != person[is_enrolled]) & (answer[is_enrolled] >= 0)).sum())
        unknown = int((answer[is_enrolled] < 0).sum())
        false_accept = int((answer[~is_enrolled] >= 0).sum())
        rows.append(
            (
                name,
                auc,
                t,
                acc,
                tpr,
                fpr,
                best,
                max(accs),
                f"{right}/{wrong}/{unknown} of {is_enrolled.sum()}",
                f"{false_accept} of {(~is_enrolled).sum()}",
                ms,
            )
        )
        print(
            f"{name}: same-pair similarity p5/p50 {np.percentile(scores[labels], [5, 50]).round(3)}, "
            f"different-pair p50/p95/p99/max {np.percentile(scores[~labels], [50, 95, 99, 100]).round(3)}"
        )
    header = (
        "embedder | AUC | threshold | accuracy | TPR | FPR | best threshold (accuracy) | "
        "identified right/wrong/unknown | strangers accepted | ms/face"
    )
    print("\n" + header)
    print("|".join("---" for _ in header.split("|")))
    for r in rows:
        print(
            f"{r[0]} | {r[1]:.4f} | {r[2]:.2f} | {r[3]:.4f} | {r[4]:.3f} | {r[5]:.4f} | {r[6]:.2f} ({r[7]:.4f}) | "
            f"{r[8]} | {r[9]} | {r[10]:.1f}"
        )


if __name__ == "__main__":
    main()
