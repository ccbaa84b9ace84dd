#!/usr/bin/env python3
"""The face detector's second look, measured: YuNet alone, YuNet x O-Net (the default; "before": the same, with the
passes merged by YuNet's score everywhere), with small photos searched again at 2x (``face.upscale=true``) and with
O-Net on the mirror image too (the second round), MTCNN, on faces and on photos of animals, each set split in
two parts (A: where the rules were chosen, B: where they were confirmed).

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

Each detector runs as built (its boxes and scores >= 0.3 cached under ``$BENCH_FACES_CACHE/verify``); AP50 is
over those, the other figures at its default score. Evaluation data stays outside the repository.
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
from bench_faces import CACHE, DATA, average_precision, read_voc, table

from crowdcount.detectors.base import iou_matrix

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
#: The detectors compared (cache name: arguments of ``FaceDetector`` at score 0.3) and their default scores.
DETECTORS = {
    "yunet": {"model": "yunet", "verify": "none", "upscale": False},
    "yunet x onet (before)": {"model": "yunet", "upscale": False, "mirror": False, "nms_on_yunet": True},
    "yunet x onet (previous default)": {"model": "yunet"},
    "yunet x onet + 2x (upscale)": {"model": "yunet", "upscale": True},
    "yunet x onet + 2x + mirror (second round)": {"model": "yunet", "upscale": True, "mirror": True},
    "centerface (default)": {"model": "centerface"},
    "centerface x onet": {"model": "centerface", "verify": "onet"},
    "mtcnn": {"model": "mtcnn"},
}
#: The row whose O-Net share of the time is timed.
DEFAULT_ROW = "centerface x onet"
DEFAULTS = {
    "yunet": 0.7,
    "yunet x onet (before)": 0.5,
    "yunet x onet (previous default)": 0.5,
    "yunet x onet + 2x (upscale)": 0.5,
    "yunet x onet + 2x + mirror (second round)": 0.5,
    "centerface (default)": 0.5,
    "centerface x onet": 0.5,
    "mtcnn": 0.5,
}


def build(rule: str, score: float = 0.3):
    """The face detector of a row of :data:`DETECTORS`, keeping what scores >= ``score``."""
    from crowdcount.detectors.face import FaceDetector
    from crowdcount.detectors.face_verify import ONetVerifier

    args = dict(DETECTORS[rule])
    mirror, nms_on_yunet = args.pop("mirror", False), args.pop("nms_on_yunet", False)
    detector = FaceDetector(min_detection_score=score, **args)
    detector._nms_on_yunet = nms_on_yunet  # before: the coarse and full-size passes merged by YuNet's score
    if detector._verifier is not None:
        detector._verifier = ONetVerifier(mirror=mirror)
    return detector


def negative_photos(folder: Path) -> list[Path]:
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    animals = names[:398]
    others = [n for n in names[398:] if n.split(".")[0].split("_", 1)[-1] in OTHERS]
    return [folder / n for n in sorted(animals + others)] + [DATA / "dogs.jpg"]


def candidates(photos: list[Path], rule: str) -> dict[str, dict[str, np.ndarray]]:
    """Per photo: the boxes and scores (>= 0.3) of the detector ``rule`` (:data:`DETECTORS`); cached."""
    import cv2

    name = rule.replace(" ", "").replace("(", "-").replace(")", "")
    cache = CACHE / "verify" / f"{name}-{len(photos)}-{photos[0].parent.name}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    detector = build(rule)
    detector.load()
    out = {}
    for path in photos:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        started = time.perf_counter()
        found = detector.detect([image])[0]
        out[path.name] = {"xyxy": found.xyxy, "score": found.confidence, "seconds": time.perf_counter() - started}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(out))
    return out


def recall_precision(results: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], threshold: float):
    """Recall and precision of the faces >= 20 px at a score (a detection >= 20 px matching no face is false)."""
    tp = fp = positives = 0
    for truth, ignored, boxes, scores in results:
        boxes = boxes[scores >= threshold]
        valid = ((truth[:, 3] - truth[:, 1]) >= 20) & ~ignored
        positives += int(valid.sum())
        overlaps = iou_matrix(boxes, truth)
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


def speed(rounds: int, widths: tuple[int, ...] = (1024, 400), mtcnn: bool = False) -> list[dict[str, object]]:
    """Seconds a photo (dlib's 9 example photos scaled to each width: 1024 px, the goal's; 400 px, the face-mask
    photos', searched again at 2x by the default), the detectors taking turns photo by photo so that a loaded
    machine slows each alike: median wall time and median CPU time of this process (all threads), and O-Net's own
    part of the default's."""
    import cv2

    rules = [rule for rule in DETECTORS if mtcnn or rule != "mtcnn"]
    detectors = {rule: build(rule, DEFAULTS[rule]) for rule in rules}
    photos = sorted(DATA.glob("20*.jpg"))
    rows: list[dict[str, object]] = []
    for width in widths:
        images = []
        for path in photos:
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            images.append(cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1]))))
        for detector in detectors.values():
            detector.detect(images[:1])  # load, warm up
        verifier = detectors[DEFAULT_ROW]._verifier
        inner = verifier.face_probability
        onet_seconds: list[float] = []

        def timed(frame: np.ndarray, xyxy: np.ndarray, inner=inner, onet_seconds=onet_seconds) -> np.ndarray:
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
        verifier.face_probability = inner  # type: ignore[method-assign]
        base = float(np.median(cpu["yunet x onet (before)"]))
        for name in detectors:
            rows.append(
                {
                    "detector": name,
                    "photos": f"dlib examples ({len(images)}) x {rounds}, {width} px wide",
                    "s/photo (wall, median)": float(np.median(wall[name])),
                    "CPU s/photo (median)": float(np.median(cpu[name])),
                    "CPU / before's": float(np.median(cpu[name])) / base,
                    "of which O-Net (wall, median)": float(np.median(onet_seconds)) if name == DEFAULT_ROW else "",
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voc", type=Path, help="Pascal VOC face boxes: annotations/, images/")
    parser.add_argument("--negatives", type=Path, help="photos with no human face (see above)")
    parser.add_argument("--mtcnn", action="store_true", help="MTCNN too (slow: ~0.2-0.4 s a photo)")
    parser.add_argument("--speed", type=int, default=0, help="N rounds of the speed test (1024 and 400 px photos)")
    args = parser.parse_args()
    if args.speed:
        print("## Speed, the detectors taking turns\n")
        print(table(speed(args.speed, mtcnn=args.mtcnn)) + "\n")
    if not args.voc or not args.negatives:
        if not args.speed:
            parser.error("give --voc and --negatives, or --speed N")
        return
    unmasked, every = read_voc(args.voc, MASKED), read_voc(args.voc)
    number = lambda path: int(re.findall(r"(\d+)\D*$", path.stem)[0])  # noqa: E731
    negatives = negative_photos(args.negatives)
    part_of = {p.name: "AB"[i % 2] for i, p in enumerate(negatives)}
    negatives = [p for p in negatives if p.name not in PEOPLE]
    rules = [rule for rule in DETECTORS if args.mtcnn or rule != "mtcnn"]
    faces = {rule: candidates([p for p, _, _ in every], rule) for rule in rules}
    animals = {rule: candidates(negatives, rule) for rule in rules}
    rows = []
    for part in ("A", "B", "AB"):
        for rule in rules:
            row: dict[str, object] = {"part": part, "detector": rule}
            for label, photos in (("unmasked", unmasked), ("all", every)):
                results = []
                for path, truth, ignored in photos:
                    if "AB"[number(path) % 2] not in part:
                        continue
                    found = faces[rule][path.name]
                    results.append((truth, ignored, found["xyxy"], found["score"]))
                row[f"AP50 {label} >=40px"] = average_precision(results, 40)
                row[f"AP50 {label} >=20px"] = average_precision(results, 20)
                if label == "unmasked":  # masked faces are boxed mask to chin: a face box overlaps them ~0.4
                    row["AP50 unmasked >=40 / >=20px, masked at IoU 0.3"] = (
                        f"{average_precision(results, 40, 0.3):.3f} / {average_precision(results, 20, 0.3):.3f}"
                    )
                if label == "unmasked":
                    recall, precision = recall_precision(results, DEFAULTS[rule])
                    row["score"] = DEFAULTS[rule]
                    row["recall / precision >=20px"] = f"{recall:.3f} / {precision:.3f}"
            mine = [p for p in negatives if part_of[p.name] in part]
            hit = [p.name for p in mine if (animals[rule][p.name]["score"] >= DEFAULTS[rule]).any()]
            row["no-face photos with a face"] = f"{len(hit)} / {len(mine)}"
            row["dogs.jpg"] = ("face" if "dogs.jpg" in hit else "none") if part_of["dogs.jpg"] in part else "-"
            rows.append(row)
    print(f"## Faces ({len(every)} photos) and photos without a face ({len(negatives)}), parts A and B\n")
    print(table(rows))


if __name__ == "__main__":
    main()
