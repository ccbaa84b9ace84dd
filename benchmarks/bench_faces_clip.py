#!/usr/bin/env python3
"""Identification and distinct-face counting on a clip with known people, end to end (`VideoAnalyzer` +
`FaceIdentifier`, real MTCNN and embedder).

    python benchmarks/bench_faces_clip.py [--embedder dlib|mobileface] [--frame-ratio 0.5]

No video with faces and identity ground truth can be had offline, so the clip is built from the 9 annotated
photos of ``../shared/data/faces`` (testing.xml + training.xml: 43 people, each face boxed): each photo is shown
for 3 s at 10 fps with a slow zoom (x1.0 -> x1.3) and pan, encoded lossily (mp4v), and the first two photos
come back at the end (people who leave and return must not count twice). Truth: 43 different people. Ten of
them (the faces at least 60 px wide) are enrolled from their original photo; the others must come out unknown.

Prints: distinct people counted vs 43, known people named, per-face identification (right / wrong name /
missed as unknown, and strangers given a name), and the analysis speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdcount.detectors.base import iou_matrix  # noqa: E402

DATA = Path(os.environ.get("CROWDCOUNT_DATA_DIR", REPO.parent / "shared" / "data")) / "faces"
SIZE = (500, 375)
FPS = 10.0
SECONDS = 3.0


def build_clip(path: Path, photos: list[tuple[str, np.ndarray, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """Write the clip; returns, per frame, the photo shown and the 2x3 matrix photo -> frame."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    plan = []
    order = [*range(len(photos)), 0, 1]
    for step, p in enumerate(order):
        name, image, _ = photos[p]
        h, w = image.shape[:2]
        base = min(SIZE[0] / w, SIZE[1] / h)
        n = int(SECONDS * FPS)
        for i in range(n):
            t = i / (n - 1)
            zoom = base * (1.0 + 0.3 * t)
            # pan from the left third to the right third of the photo (alternating direction)
            cx = w * (0.4 + 0.2 * (t if step % 2 == 0 else 1 - t))
            cy = h * 0.45
            matrix = np.array([[zoom, 0, SIZE[0] / 2 - zoom * cx], [0, zoom, SIZE[1] / 2 - zoom * cy]], np.float32)
            frame = cv2.warpAffine(image, matrix, SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)
            writer.write(frame)
            plan.append((name, matrix))
    writer.release()
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", default="dlib")
    parser.add_argument("--frame-ratio", type=float, default=0.5)
    parser.add_argument(
        "--face-model",
        default="mtcnn",
        help="the face detector: mtcnn, centerface (the default), yunet (alone), yunet+onet or centerface+onet",
    )
    parser.add_argument("--min-score", type=float, default=0.4, help="the face detector's min_detection_score")
    parser.add_argument("--cluster-threshold", type=float, default=None, help="default: the embedder's")
    args = parser.parse_args()
    import cv2

    from crowdcount.analyzer import VideoAnalyzer, to_document
    from crowdcount.detectors import build_detector
    from crowdcount.detectors.embedders import build_embedder
    from crowdcount.eval.groundtruth import read_imglab
    from crowdcount.faces import FaceIdentifier, LocalGallery

    photos = []
    for xml in ("testing.xml", "training.xml"):
        gt = read_imglab(DATA / xml)
        for key, frame in gt.frames.items():
            photos.append((Path(str(key)).name, cv2.imread(str(key)), frame.xyxy))
    people = sum(len(b) for _, _, b in photos)
    model, _, verify = args.face_model.partition("+")  # +onet: checked by O-Net
    detector = build_detector(
        "face", {"min_detection_score": args.min_score, "model": model, "verify": verify or "none"}
    )
    embedder = build_embedder(args.embedder)
    with tempfile.TemporaryDirectory() as tmp:
        gallery = LocalGallery(Path(tmp) / "g.json")
        enrolled: dict[tuple[str, int], str] = {}
        for name, image, boxes in photos:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            found = detector.detect([rgb])[0]
            overlap = iou_matrix(boxes, found.xyxy)
            for k, box in enumerate(boxes):
                if box[2] - box[0] < 60 or not overlap.shape[1] or overlap[k].max() < 0.3:
                    continue
                person = f"{Path(name).stem}-{k}"
                vector = embedder.embed(rgb, found[[int(overlap[k].argmax())]])
                gallery.enroll(person, vector, {"name": embedder.name, "dim": embedder.dim})
                enrolled[(name, k)] = person
        clip = Path(tmp) / "people.mp4"
        plan = build_clip(clip, photos)
        boxes_of = {name: boxes for name, _, boxes in photos}
        identifier = FaceIdentifier(gallery, embedder, cluster_threshold=args.cluster_threshold)
        analyzer = VideoAnalyzer([detector], frame_ratio=args.frame_ratio, processors=[identifier])
        started = time.perf_counter()
        result = analyzer.analyze(clip)
        elapsed = time.perf_counter() - started
        document = to_document(result)
    faces = document["faces"]
    right = wrong = missed = stranger_named = stranger_ok = unmatched = 0
    sweep: list[tuple[bool, float, float]] = []  # (enrolled face named right?, similarity, face width)
    for frame in result.frames:
        name, matrix = plan[frame.index - 1]
        truth = boxes_of[name]
        corners = np.c_[truth.reshape(-1, 2), np.ones(2 * len(truth))] @ matrix.T
        truth_frame = corners.reshape(-1, 4)
        dets = frame.detections["Face"]
        if not len(dets):
            continue
        overlap = iou_matrix(dets.xyxy, truth_frame)
        for d in range(len(dets)):
            k = int(overlap[d].argmax())
            if overlap[d, k] < 0.3:
                unmatched += 1
                continue
            expected = enrolled.get((name, k))
            got = dets.data["identity"][d]
            width = float(dets.xyxy[d, 2] - dets.xyxy[d, 0])
            similarity = float(dets.data["similarity"][d])
            if expected is None or got == expected:
                sweep.append((expected is not None, similarity, width))
            if expected is None:
                stranger_ok += got == "unknown"
                stranger_named += got != "unknown"
            elif got == expected:
                right += 1
            elif got == "unknown":
                missed += 1
            else:
                wrong += 1
    known_named = {p["name"] for p in faces["people"]}
    print(f"clip: {len(plan)} frames, {len(photos)} photos (2 shown twice), {people} people, {len(enrolled)} enrolled")
    print(
        f"face detector {args.face_model} (score >= {args.min_score}), embedder {embedder.name}: "
        f"match threshold {identifier.match_threshold}, cluster threshold {identifier.cluster_threshold}, "
        f"min sightings {identifier.min_sightings}"
    )
    print("\nmeasure | value")
    print("---|---")
    print(
        f"distinct people counted (truth {people}) | {faces['distinct_people']} "
        f"({faces['known_people']} known + {faces['unknown_people']} unknown), error "
        f"{faces['distinct_people'] - people:+d}"
    )
    print(f"enrolled people named | {len(known_named & set(enrolled.values()))} of {len(enrolled)}")
    print(f"enrolled faces: right / wrong name / unknown | {right} / {wrong} / {missed}")
    print(f"faces of strangers: unknown / given a name | {stranger_ok} / {stranger_named}")
    print(f"detections matching no annotated face | {unmatched}")
    print(f"speed | {len(result.frames) / elapsed:.1f} analysed frames/s ({faces['faces_seen']} faces)")
    rows = np.array(sweep, np.float64).reshape(-1, 3)
    mine, sims, widths = rows[:, 0] > 0, rows[:, 1], rows[:, 2]
    print("\nmatch threshold | min face width | enrolled faces named right | strangers given a name")
    print("---|---|---|---")
    base = identifier.match_threshold
    for threshold in sorted({base, base + 0.01, base + 0.02, base + 0.03}):
        for min_width in (identifier.min_face_size, 32, 40):
            ok = (sims >= threshold) & (widths >= min_width)
            print(f"{threshold:.2f} | {min_width} | {int((ok & mine).sum())} | {int((ok & ~mine).sum())}")


if __name__ == "__main__":
    main()
