#!/usr/bin/env python3
"""Install OpenCV's YuNet face detector (ONNX, MIT) into ``crowdcount/models/yunet/``: the file checked
byte for byte, loaded by OpenCV's ``FaceDetectorYN`` and tried on a real photo. Run once, by a maintainer; the
result is committed.

    python scripts/convert_yunet.py face_detection_yunet_2026may.onnx

No format conversion is needed: OpenCV (a crowdcount dependency) runs the ONNX graph and decodes YuNet's
heads (priors, boxes, 5 keypoints, NMS) itself, so the detector shares its tested decoding. The file comes from
``opencv/opencv_zoo`` ``models/face_detection_yunet/`` (MIT, Shiqi Yu). The zoo keeps models in Git LFS; the
bytes used were taken from a public repository that commits them (see MODELS.md) and must match
:data:`SHA256`, the digest that other projects citing the zoo file record for it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from licences import mit_licence  # scripts/licences.py (scripts run from their folder)

REPO = Path(__file__).resolve().parents[1]
FILE = "face_detection_yunet_2026may.onnx"
SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
SIZE = 229738
LICENCE = mit_licence("2020 Shiqi Yu <shiqi.yu@gmail.com>")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help=f"{FILE} (from opencv_zoo, Git LFS)")
    parser.add_argument("--out", type=Path, default=REPO / "crowdcount" / "models" / "yunet")
    parser.add_argument("--photo", type=Path, default=REPO.parent / "shared" / "data" / "faces" / "bald_guys.jpg")
    args = parser.parse_args()
    import cv2

    digest = sha256(args.source)
    if digest != SHA256 or args.source.stat().st_size != SIZE:
        raise SystemExit(f"{args.source}: sha256 {digest}, {args.source.stat().st_size} bytes: not the expected file")
    image = cv2.imread(str(args.photo))
    if image is None:
        raise SystemExit(f"{args.photo}: not an image")
    detector = cv2.FaceDetectorYN.create(str(args.source), "", (image.shape[1], image.shape[0]), 0.5, 0.3, 5000)
    _, faces = detector.detect(image)
    count = 0 if faces is None else len(faces)
    if count < 10:
        raise SystemExit(f"YuNet found {count} faces in {args.photo}: expected a crowd of faces")
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.source, args.out / FILE)
    (args.out / "LICENSE").write_text(LICENCE, encoding="utf-8")
    info = {
        "name": "yunet",
        "architecture": "YuNet (Shiqi Yu et al.), anchor-free face detector, strides 8/16/32, 5 keypoints",
        "format": "onnx",
        "input": "BGR image of any size (OpenCV FaceDetectorYN), uint8",
        "outputs": {"faces": "[N, 15]: x, y, w, h, 5 keypoints (x, y), score"},
        "source": "opencv/opencv_zoo models/face_detection_yunet/" + FILE,
        "upstream": "https://github.com/ShiqiYu/libfacedetection.train",
        "licence": "MIT",
        "sha256": {FILE: digest},
        "installed_with": f"opencv-python {cv2.__version__}",
    }
    (args.out / "model.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"installed {args.out / FILE} ({count} faces in {args.photo.name})")


if __name__ == "__main__":
    main()
