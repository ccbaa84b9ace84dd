#!/usr/bin/env python3
"""Face embedders and face detectors side by side: verification, identification, detection AP, speed.

    python benchmarks/bench_faces.py --people PHOTOS/deepface         # every embedder, detector
    python benchmarks/bench_faces.py --people DIR --embedder dlib --embedder mobileface --detector mtcnn

Embedders, on ``--people DIR`` (``DIR/NAME/*.jpg``, one person per folder, real photos of different days, or
deepface's test photos with their pair list: see :func:`people_photos` and docs/faces.md; the evaluation set is
never part of the repository). Each photo's largest
face is found by MTCNN (cached) and embedded:

- verification: every two photos is a pair (same person or not); ROC AUC, TAR at FAR 1 % (the share of same
  pairs accepted at the threshold that accepts 1 % of different pairs) and TAR / FAR at the embedder's own
  match threshold;
- identification: the people with at least 3 photos are enrolled from their first 2 (sorted by name); every
  other photo of theirs must be named right (right / wrong / unknown), and the people with fewer photos are
  strangers who must stay ``unknown``; a photo is "exact" when the answer is exactly right;
- ms per face (embedding only, after alignment).

Detectors, on imglab XML ground truth (``--xml``, default dlib's example photos in ``../shared/data/faces``)
and, with ``--wider DIR`` (``wider_face_val_bbx_gt.txt`` and ``images/``), WIDER FACE val photos: each photo
scaled to 1024 and to 512 px wide (smaller faces); AP50 for the faces at least 40 and at least 20 px tall
(smaller faces, and detections of them, are ignored), and the median seconds per photo.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdcount.detectors.base import iou_matrix  # noqa: E402

DATA = Path(os.environ.get("CROWDCOUNT_DATA_DIR", REPO.parent / "shared" / "data")) / "faces"
# not CROWDCOUNT_*: crowdcount reads every such variable as a configuration override
CACHE = Path(os.environ.get("BENCH_FACES_CACHE", Path.home() / ".cache" / "crowdcount-bench" / "faces"))
PHOTO_WIDTH = 1024


# --- embedders ------------------------------------------------------------------------------------------


def people_photos(folder: Path) -> dict[str, list[Path]]:
    """``NAME/*.jpg`` subfolders, or deepface's test folder (``img*.jpg`` + ``face-recognition-pivot.csv``):
    its people are the connected components of the same-person ("Yes") pairs the CSV lists, named
    ``person01``... in the order of their lowest image number."""
    import csv

    from crowdcount.faces.enroll import people_folder

    pivot = folder / "face-recognition-pivot.csv"
    if not pivot.exists():
        return people_folder(folder)
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    with pivot.open(newline="") as fh:
        for row in csv.DictReader(fh):
            a, b = Path(row["file_x"]).name, Path(row["file_y"]).name
            if row["decision"] == "Yes":
                parent[root(a)] = root(b)
            else:
                root(a), root(b)
    number = lambda name: int("".join(c for c in name if c.isdigit()) or 0)  # noqa: E731
    groups: dict[str, list[str]] = {}
    for name in parent:
        groups.setdefault(root(name), []).append(name)
    ordered = sorted((sorted(g, key=number) for g in groups.values()), key=lambda g: number(g[0]))
    return {f"person{i + 1:02d}": [folder / name for name in g] for i, g in enumerate(ordered)}


def largest_faces(photos: list[Path], model: str = "mtcnn") -> dict[Path, tuple[np.ndarray, object]]:
    """Each photo's RGB image and its largest face found by the face detector ``model`` (cached)."""
    from crowdcount.detectors.base import Detections
    from crowdcount.detectors.face import FaceDetector
    from crowdcount.faces.enroll import read_photo

    detector = None
    out = {}
    for path in photos:
        image = read_photo(path)
        cache = CACHE / ("dets" if model == "mtcnn" else f"dets-{model}") / f"{path.parent.name}__{path.stem}.npz"
        if cache.exists():
            data = np.load(cache)
            faces = Detections(
                data["xyxy"], data["score"], np.ones(len(data["score"]), np.int32), {"keypoints": data["kp"]}
            )
        else:
            if detector is None:  # yunet: YuNet alone; +onet: checked by O-Net (the model's own score)
                model_name, _, verify = model.partition("+")
                # the model's default score (0.5), but 0.9 for YuNet alone, as it was measured (docs/faces.md)
                score = 0.9 if model_name == "yunet" and not verify else None
                detector = FaceDetector(min_detection_score=score, model=model_name, verify=verify or "none")
            found = detector.detect([image])[0]
            if not len(found):
                print(f"  {path}: no face", file=sys.stderr)
                continue
            area = (found.xyxy[:, 2] - found.xyxy[:, 0]) * (found.xyxy[:, 3] - found.xyxy[:, 1])
            faces = found[np.array([int(np.argmax(area))])]
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, xyxy=faces.xyxy, score=faces.confidence, kp=faces.data["keypoints"])
        out[path] = (image, faces)
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The probability that a same-person pair scores above a different-person pair."""
    pos, neg = scores[labels], scores[~labels]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) at the strictest threshold accepting at most ``far`` of the different pairs."""
    neg = np.sort(scores[~labels])[::-1]
    k = int(np.floor(far * len(neg)))  # accepted impostors allowed
    threshold = float(neg[k]) + 1e-6 if k < len(neg) else float(neg[-1])
    return float((scores[labels] >= threshold).mean()), threshold


def bench_embedder(
    spec: str, faces: dict[Path, tuple[np.ndarray, object]], owner: dict[Path, str]
) -> dict[str, object]:
    from crowdcount.detectors.embedders import build_embedder
    from crowdcount.faces.gallery import UNKNOWN, GalleryIndex, Person

    name, _, threshold = spec.partition("@")  # dlib@0.95: another match threshold
    embedder = build_embedder(name, match_threshold=float(threshold) if threshold else None)
    embedder.load()
    paths = list(faces)
    vectors, times = [], []
    for path in paths:
        image, found = faces[path]
        started = time.perf_counter()
        vectors.append(embedder.embed(image, found)[0])
        times.append(time.perf_counter() - started)
    vectors = np.stack(vectors)
    who = np.array([owner[p] for p in paths])
    sims = vectors @ vectors.T
    i, j = np.triu_indices(len(paths), k=1)
    scores, labels = sims[i, j], who[i] == who[j]
    tar, threshold = tar_at_far(scores, labels, 0.01)
    at_own = scores >= embedder.match_threshold
    # identification: enrol the first two photos of everyone with at least three
    counts = {name: int((who == name).sum()) for name in dict.fromkeys(who)}
    enrolled, probes = [], []
    people = []
    for name, n in counts.items():
        rows = [k for k in range(len(paths)) if who[k] == name]
        if n >= 3:
            people.append(Person(name, vectors[rows[:2]]))
            enrolled.append(name)
            probes += [(k, name) for k in rows[2:]]
        else:
            probes += [(k, UNKNOWN) for k in rows]
    matches = GalleryIndex(people, embedder.dim).match(vectors[[k for k, _ in probes]], embedder.match_threshold)
    truth = np.array([t for _, t in probes])
    named = matches.names.astype(str)
    known = truth != UNKNOWN
    return {
        "embedder": spec,
        "pairs": f"{int(labels.sum())}/{int((~labels).sum())}",
        "auc": roc_auc(scores, labels),
        "tar@far1%": tar,
        "thr@far1%": threshold,
        "threshold": embedder.match_threshold,
        "tar/far@thr": f"{at_own[labels].mean():.3f}/{at_own[~labels].mean():.4f}",
        "id right/wrong/unknown": f"{int((named[known] == truth[known]).sum())}/"
        f"{int(((named[known] != truth[known]) & (named[known] != UNKNOWN)).sum())}/"
        f"{int((named[known] == UNKNOWN).sum())}",
        "strangers named": f"{int((named[~known] != UNKNOWN).sum())}/{int((~known).sum())}",
        "exact": f"{int((named == truth).sum())}/{len(truth)}",
        "ms/face": 1000 * float(np.median(times)),
        "enrolled": len(enrolled),
    }


# --- detectors ------------------------------------------------------------------------------------------


def read_imglab(path: Path) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(photo, ``(n, 4)`` xyxy boxes) of an imglab XML file (ignored boxes left out)."""
    root = ET.parse(path).getroot()
    out = []
    for image in root.iter("image"):
        boxes = [
            [
                float(b.get("left")),
                float(b.get("top")),
                float(b.get("left")) + float(b.get("width")),
                float(b.get("top")) + float(b.get("height")),
            ]
            for b in image.iter("box")
            if b.get("ignore") != "1"
        ]
        boxes = np.array(boxes, np.float32).reshape(-1, 4)
        out.append((path.parent / image.get("file"), boxes, np.zeros(len(boxes), bool)))
    return out


def read_voc(folder: Path, ignore: frozenset[str] = frozenset()) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(photo, xyxy boxes, ignored?) of Pascal VOC annotations (``annotations/*.xml`` beside ``images/``):
    objects of a class in ``ignore`` are neither to be found nor wrong to find."""
    out = []
    for xml in sorted((folder / "annotations").glob("*.xml")):
        root = ET.parse(xml).getroot()
        boxes, flags = [], []
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            boxes.append([float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")])  # type: ignore[union-attr]
            flags.append(obj.findtext("name") in ignore)
        out.append(
            (
                folder / "images" / str(root.findtext("filename")),
                np.array(boxes, np.float32).reshape(-1, 4),
                np.array(flags, bool),
            )
        )
    return out


def read_wider(folder: Path, limit: int) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(photo, xyxy boxes) of WIDER FACE val (``wider_face_val_bbx_gt.txt``; invalid faces left out)."""
    lines = (folder / "wider_face_val_bbx_gt.txt").read_text().split("\n")
    out, i = [], 0
    while i < len(lines) and lines[i].strip():
        name, count = lines[i].strip(), int(lines[i + 1])
        rows = np.array([lines[i + 2 + k].split() for k in range(max(count, 1))], np.float32).reshape(-1, 10)[:count]
        rows = rows[rows[:, 7] == 0]
        boxes = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1)
        if (folder / "images" / name).exists():
            out.append((folder / "images" / name, boxes, np.zeros(len(boxes), bool)))
        i += 2 + max(count, 1)
    return out[:limit] if limit else out


def average_precision(
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], min_height: float, ignore_iou: float = 0.5
) -> float:
    """AP50 (all-point interpolation) over photos of (truth xyxy, truth ignored?, detected xyxy, scores); truth
    shorter than ``min_height`` or ignored is neither to be found nor wrong to find, and detections shorter
    than ``min_height`` matching nothing are left out. ``ignore_iou``: a detection that overlaps an ignored face
    this much (and matches nothing) is left out too (below 0.5 where the ignored faces are boxed another way,
    e.g. masked faces boxed from the mask to the chin)."""
    records, positives = [], 0
    for truth, ignored, boxes, scores in results:
        valid = ((truth[:, 3] - truth[:, 1]) >= min_height) & ~ignored
        positives += int(valid.sum())
        order = np.argsort(-scores)
        overlaps = iou_matrix(boxes[order], truth)
        taken = np.zeros(len(truth), bool)
        for row, k in enumerate(order):
            best = int(np.argmax(overlaps[row])) if len(truth) else -1
            if best >= 0 and overlaps[row, best] >= 0.5 and not taken[best]:
                taken[best] = True
                if valid[best]:
                    records.append((scores[k], 1))
                continue  # a match of an ignored face: neither right nor wrong
            if best >= 0 and overlaps[row, best] >= 0.5 and not valid[best]:
                continue
            if ignore_iou < 0.5 and len(truth) and np.any(ignored & (overlaps[row] >= ignore_iou)):
                continue
            if boxes[k, 3] - boxes[k, 1] >= min_height:
                records.append((scores[k], 0))
    if not positives:
        return float("nan")
    records.sort(key=lambda r: -r[0])
    hits = np.array([r[1] for r in records], np.float64)
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    recall, precision = tp / positives, tp / np.maximum(tp + fp, 1e-9)
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    for k in range(len(precision) - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


_FOUND: dict[tuple[str, int, str], tuple[np.ndarray, np.ndarray, float]] = {}


def bench_detector(
    spec: str, photos: list[tuple[Path, np.ndarray, np.ndarray]], label: str, width: int = PHOTO_WIDTH
) -> dict[str, object]:
    import cv2

    from crowdcount.detectors import build_detector
    from crowdcount.faces.enroll import read_photo

    name, _, preset = spec.partition(":")
    args: dict[str, object] = {"min_detection_score": 0.3}
    if preset:  # face:mtcnn; face:yunet, face:centerface (alone); face:yunet+onet; face: the default
        model, _, verify = preset.partition("+")
        args["model"] = model
        if model != "mtcnn":
            args["verify"] = verify or "none"
    detector = build_detector(name, args)
    detector.load()
    results, times = [], []
    for path, truth, ignored in photos:
        image = read_photo(path)
        scale = width / image.shape[1] if width else 1.0  # 0: as it is
        if scale != 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        key = (spec, width, str(path))
        if key not in _FOUND:  # the same photos in two sets (e.g. all faces, unmasked faces): detect once
            started = time.perf_counter()
            found = detector.detect([image])[0]
            _FOUND[key] = (found.xyxy, found.confidence, time.perf_counter() - started)
        boxes, scores, seconds = _FOUND[key]
        times.append(seconds)
        results.append((truth * scale, ignored, boxes, scores))
    return {
        "detector": spec,
        "photos": f"{label} ({len(photos)} photos, {sum(int((~i).sum()) for _, _, i in photos)} faces), "
        + (f"{width} px wide" if width else "as they are"),
        "AP50 >=40px": average_precision(results, 40),
        "AP50 >=20px": average_precision(results, 20),
        "s/photo": float(np.median(times)),
    }


def table(rows: list[dict[str, object]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=Path, help="NAME/*.jpg folders of real photos (embedders)")
    parser.add_argument("--embedder", action="append", help="embedder name or path[@match threshold] (repeatable)")
    parser.add_argument(
        "--face-model",
        default="mtcnn",
        help="the face detector of the embedder tests: mtcnn, yunet, yunet+onet, centerface, centerface+onet",
    )
    parser.add_argument(
        "--detector",
        action="append",
        help="face detector: face (the default, CenterFace alone), face:centerface+onet, face:yunet (alone), "
        "face:yunet+onet (the default before), face:mtcnn (repeatable)",
    )
    parser.add_argument("--xml", type=Path, action="append", help="imglab XML ground truth (repeatable)")
    parser.add_argument("--wider", type=Path, help="WIDER FACE val: wider_face_val_bbx_gt.txt and images/")
    parser.add_argument("--wider-limit", type=int, default=0, help="the first N WIDER photos only")
    parser.add_argument(
        "--voc",
        type=Path,
        help="Pascal VOC face boxes (annotations/*.xml, images/), e.g. the face-mask set: all faces, then "
        "unmasked faces only (masked ignored)",
    )
    parser.add_argument(
        "--width",
        type=int,
        action="append",
        help=f"photo widths for the detectors, 0: as they are (default {PHOTO_WIDTH} and 512)",
    )
    args = parser.parse_args()
    if args.people:
        owner = {photo: name for name, photos in people_photos(args.people).items() for photo in photos}
        faces = largest_faces(list(owner), args.face_model)
        rows = [bench_embedder(spec, faces, owner) for spec in args.embedder or ["dlib", "mobileface"]]
        print(f"## Embedders: {args.people} ({len(faces)} photos with a face, faces by {args.face_model})\n")
        print(table(rows) + "\n")
    sets = [(str(x.name), read_imglab(x)) for x in args.xml or [DATA / "testing.xml", DATA / "training.xml"]]
    sets = [("dlib examples", [p for _, photos in sets for p in photos])]
    if args.wider:
        sets.append(("WIDER val", read_wider(args.wider, args.wider_limit)))
    if args.voc:
        sets.append((f"{args.voc.name}, all faces", read_voc(args.voc)))
        masked = frozenset({"with_mask", "mask_weared_incorrect"})
        sets.append((f"{args.voc.name}, unmasked faces", read_voc(args.voc, masked)))
    rows = [
        bench_detector(spec, photos, label, width)
        for label, photos in sets
        for width in args.width or [PHOTO_WIDTH, 512]
        for spec in args.detector or ["face", "face:yunet", "face:mtcnn"]
    ]
    print("## Face detectors\n")
    print(table(rows))


if __name__ == "__main__":
    main()
