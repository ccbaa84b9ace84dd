#!/usr/bin/env python3
"""The face detector's second look, measured: YuNet alone, YuNet x O-Net (the default), MTCNN, on faces and on
photos of animals, each set split in two parts (A: where the rule was chosen, B: where it was confirmed).

    python benchmarks/bench_faces_verify.py --voc FACEMASK/archive --negatives IMAGENET_SAMPLES [--mtcnn]
    python benchmarks/bench_faces_verify.py --speed 3       # seconds a 1024 px photo, the detectors in turns

- ``--voc``: Pascal VOC face boxes (``annotations/*.xml``, ``images/``), the CC0 face-mask photos: AP50 on the
  unmasked faces (masked ones neither to be found nor wrong to find) and on all faces, >= 40 and >= 20 px tall;
  recall and precision of unmasked faces >= 20 px at each detector's default score. Part A: photos with an
  even number in their file name, B: odd.
- ``--negatives``: photos with no human face (``EliSchwartz/imagenet-sample-images``: one ImageNet photo a
  class; the first 398 are animals, plus masks, a teddy bear, a totem pole, comic and book covers); the photos
  in :data:`PEOPLE` (a person's face is in them too, checked by eye) are left out, dogs.jpg of the shared face
  photos is added last. Part A: even positions in that sorted list, B: odd. Counted: the photos in which a
  detector finds a face at its default score.

Candidates (YuNet at >= 0.3 with no verifier, MTCNN at >= 0.3) and O-Net's probabilities are cached under
``$BENCH_FACES_CACHE/verify``. Evaluation data stays outside the repository.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_faces import CACHE, DATA, average_precision, iou, read_voc, table

#: ImageNet sample photos (of the first 398 classes and the others read) in which a person's face shows.
PEOPLE = frozenset(
    {
        "n01494475_hammerhead.JPEG",
        "n02066245_grey_whale.JPEG",
        "n02087046_toy_terrier.JPEG",
        "n02088466_bloodhound.JPEG",
        "n02093859_Kerry_blue_terrier.JPEG",
        "n02097298_Scotch_terrier.JPEG",
        "n02098286_West_Highland_white_terrier.JPEG",
        "n02098413_Lhasa.JPEG",
        "n02102040_English_springer.JPEG",
        "n02105641_Old_English_sheepdog.JPEG",
        "n02107908_Appenzeller.JPEG",
        "n02108422_bull_mastiff.JPEG",
        "n02111129_Leonberg.JPEG",
        "n02111500_Great_Pyrenees.JPEG",
        "n02113712_miniature_poodle.JPEG",
        "n02398521_hippopotamus.JPEG",
        "n02514041_barracouta.JPEG",
        "n02536864_coho.JPEG",
        "n02640242_sturgeon.JPEG",
        "n02641379_gar.JPEG",
        "n03868863_oxygen_mask.JPEG",
    }
)
#: The ImageNet sample classes read besides the 398 animal classes: faces that are not people's, or covers.
OTHERS = frozenset(
    [
        "brass",
        "brassiere",
        "cinema",
        "gasmask",
        "jigsaw_puzzle",
        "mask",
        "oxygen_mask",
        "ski_mask",
        "teddy",
        "theater_curtain",
        "totem_pole",
        "comic_book",
        "book_jacket",
    ]
)
MASKED = frozenset({"with_mask", "mask_weared_incorrect"})
DEFAULTS = {"yunet": 0.7, "yunet x onet": 0.5, "mtcnn": 0.5}


def negative_photos(folder: Path) -> list[Path]:
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    animals = names[:398]
    others = [n for n in names[398:] if n.split(".")[0].split("_", 1)[-1] in OTHERS]
    return [folder / n for n in sorted(animals + others)] + [DATA / "dogs.jpg"]


def candidates(photos: list[Path], kind: str) -> dict[str, dict[str, np.ndarray]]:
    """Per photo: YuNet's boxes and scores (>= 0.3, no verifier) and O-Net's face probability of each, or
    MTCNN's boxes and scores (>= 0.3); cached."""
    import cv2

    from crowdcount.detectors.face import FaceDetector
    from crowdcount.detectors.face_verify import ONetVerifier

    cache = CACHE / "verify" / f"{kind}-{len(photos)}-{photos[0].parent.name}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    detector = FaceDetector(min_detection_score=0.3, model=kind, verify="none")
    detector.load()
    verifier = ONetVerifier()
    out = {}
    for path in photos:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        started = time.perf_counter()
        found = detector.detect([image])[0]
        row = {"xyxy": found.xyxy, "score": found.confidence, "seconds": time.perf_counter() - started}
        if kind == "yunet":
            row["onet"] = verifier.face_probability(image, found.xyxy)
        out[path.name] = row
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(out))
    return out


def scored(found: dict[str, np.ndarray], rule: str) -> np.ndarray:
    return found["score"] * found["onet"] if rule == "yunet x onet" else found["score"]


def recall_precision(results: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], threshold: float):
    """Recall and precision of the faces >= 20 px at a score (a detection >= 20 px matching no face is false)."""
    tp = fp = positives = 0
    for truth, ignored, boxes, scores in results:
        boxes = boxes[scores >= threshold]
        valid = ((truth[:, 3] - truth[:, 1]) >= 20) & ~ignored
        positives += int(valid.sum())
        overlaps = iou(boxes, truth) if len(truth) and len(boxes) else np.zeros((len(boxes), len(truth)))
        taken = np.zeros(len(truth), bool)
        for row in range(len(boxes)):
            best = int(np.argmax(overlaps[row])) if len(truth) else -1
            if best >= 0 and overlaps[row, best] >= 0.5:
                if not taken[best]:
                    taken[best] = True
                    tp += int(valid[best])
                continue
            fp += int(boxes[row, 3] - boxes[row, 1] >= 20)
    return tp / max(positives, 1), tp / max(tp + fp, 1)


def speed(rounds: int, width: int = 1024) -> list[dict[str, object]]:
    """Seconds a photo (dlib's 9 example photos scaled to ``width``), the detectors taking turns photo by photo so
    that a loaded machine slows each alike: median wall time and median CPU time of this process (all threads),
    and O-Net's own part of the default's."""
    import cv2

    from crowdcount.detectors import build_detector

    photos = sorted(DATA.glob("20*.jpg"))
    images = []
    for path in photos:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        images.append(cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1]))))
    detectors = {
        "yunet x onet": build_detector("face"),
        "yunet": build_detector("face", {"verify": "none"}),
        "mtcnn": build_detector("face", {"model": "mtcnn"}),
    }
    for detector in detectors.values():
        detector.detect(images[:1])  # load, warm up
    verifier = detectors["yunet x onet"]._verifier
    inner = verifier.face_probability
    onet_seconds: list[float] = []

    def timed(frame: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out = inner(frame, xyxy)
        onet_seconds.append(time.perf_counter() - started)
        return out

    verifier.face_probability = timed  # type: ignore[method-assign]
    wall: dict[str, list[float]] = {k: [] for k in detectors}
    cpu: dict[str, list[float]] = {k: [] for k in detectors}
    for _ in range(rounds):
        for image in images:
            for name, detector in detectors.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                detector.detect([image])
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
    return [
        {
            "detector": name,
            "photos": f"dlib examples ({len(images)}) x {rounds}, {width} px wide",
            "s/photo (wall, median)": float(np.median(wall[name])),
            "CPU s/photo (median)": float(np.median(cpu[name])),
            "of which O-Net (wall, median)": float(np.median(onet_seconds)) if name == "yunet x onet" else "",
        }
        for name in detectors
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voc", type=Path, help="Pascal VOC face boxes: annotations/, images/")
    parser.add_argument("--negatives", type=Path, help="photos with no human face (see above)")
    parser.add_argument("--mtcnn", action="store_true", help="MTCNN too (slow: ~0.2-0.4 s a photo)")
    parser.add_argument("--speed", type=int, default=0, help="N rounds of the speed test on 1024 px photos")
    args = parser.parse_args()
    if args.speed:
        print("## Speed, the detectors taking turns\n")
        print(table(speed(args.speed)) + "\n")
    if not args.voc or not args.negatives:
        if not args.speed:
            parser.error("give --voc and --negatives, or --speed N")
        return
    unmasked, every = read_voc(args.voc, MASKED), read_voc(args.voc)
    number = lambda path: int(re.findall(r"(\d+)\D*$", path.stem)[0])  # noqa: E731
    negatives = negative_photos(args.negatives)
    part_of = {p.name: "AB"[i % 2] for i, p in enumerate(negatives)}
    negatives = [p for p in negatives if p.name not in PEOPLE]
    kinds = ["yunet"] + (["mtcnn"] if args.mtcnn else [])
    faces = {k: candidates([p for p, _, _ in every], k) for k in kinds}
    animals = {k: candidates(negatives, k) for k in kinds}
    rules = [("yunet", "yunet"), ("yunet", "yunet x onet")] + ([("mtcnn", "mtcnn")] if args.mtcnn else [])
    rows = []
    for part in ("A", "B", "AB"):
        for kind, rule in rules:
            row: dict[str, object] = {"part": part, "detector": rule}
            for label, photos in (("unmasked", unmasked), ("all", every)):
                results = []
                for path, truth, ignored in photos:
                    if "AB"[number(path) % 2] not in part:
                        continue
                    found = faces[kind][path.name]
                    scores = scored(found, rule)
                    keep = scores >= 0.3
                    results.append((truth, ignored, found["xyxy"][keep], scores[keep]))
                row[f"AP50 {label} >=40px"] = average_precision(results, 40)
                row[f"AP50 {label} >=20px"] = average_precision(results, 20)
                if label == "unmasked":
                    recall, precision = recall_precision(results, DEFAULTS[rule])
                    row["score"] = DEFAULTS[rule]
                    row["recall / precision >=20px"] = f"{recall:.3f} / {precision:.3f}"
            mine = [p for p in negatives if part_of[p.name] in part]
            hit = [p.name for p in mine if (scored(animals[kind][p.name], rule) >= DEFAULTS[rule]).any()]
            row["no-face photos with a face"] = f"{len(hit)} / {len(mine)}"
            row["dogs.jpg"] = ("face" if "dogs.jpg" in hit else "none") if part_of["dogs.jpg"] in part else "-"
            rows.append(row)
    print(f"## Faces ({len(every)} photos) and photos without a face ({len(negatives)}), parts A and B\n")
    print(table(rows))


if __name__ == "__main__":
    main()
