#!/usr/bin/env python3
"""Convert an Intel Open Model Zoo person ReID network (OpenVINO IR, Apache-2.0) into the models crowdcount ships
in ``crowdcount/models/person_reid_<NNNN>/``: a TensorFlow SavedModel (any batch) and a TensorFlow Lite file
(resizable batch, for CPUs). Written for ``person-reidentification-retail-0287`` (FP32 IR) and
``person-reidentification-retail-0277`` (FP16 IR: its ``Convert`` ops turn the float16 constants into float32,
and the TensorFlow model keeps float32 weights). Run once per model, by a maintainer; the result is committed.

    pip install tensorflow==2.21.0 openvino opencv-python   # openvino reads the IR (and checks the result)
    python scripts/convert_reid.py ../shared/models/person-reid/person-reidentification-retail-0287.xml \
        [--out DIR] [--check-video ../shared/data/pets09/vtest.avi \
                     --check-gt ../shared/data/pets09/gt_frames001-124.txt]
    python scripts/convert_reid.py person-reidentification-retail-0277.xml --check-video ... --check-gt ...

No converter package is used (``openvino2tensorflow`` is unmaintained; the ONNX export of the same network gives
NaN under onnxruntime). The script

1. reads the IR with the ``openvino`` wheel (``ov.Core().read_model``: op types, attributes, constants);
2. rebuilds it op by op with TensorFlow ops by ``scripts/openvino_ir.py`` (shared with
   ``convert_person_detection.py``), keeping every 4-D feature map NHWC (TensorFlow's CPU layout): convolution
   weights ``[O, I, kh, kw]`` -> ``[kh, kw, I, O]``, depthwise ``GroupConvolution`` -> ``depthwise_conv2d``,
   explicit pads as ``tf.pad``, ``MVN`` (instance normalisation) as mean / variance over the mapped axes with the
   epsilon inside the square root, pooling, ``ReduceMean``, ``MatMul``, ``PRelu``, ``ShapeOf`` / ``Reshape`` /
   ``Gather`` / ``Concat`` on shapes computed from the tensors (so any batch works; ``Reshape`` in the IR's NCHW
   element order), axes of 4-D ops mapped NCHW -> NHWC; an op or attribute it does not implement stops the script
   with one line;
3. wraps it as ``serving_default``: ``images`` uint8 RGB ``[N, 256, 128, 3]`` -> ``embeddings`` float32
   ``[N, 256]`` (not normalised; compare by cosine). The IR takes BGR 0-255 and does its own
   normalisation (BGR -> RGB, ImageNet mean / std, inside the graph): the wrapper only reverses the channels;
4. checks it against the ``openvino`` runtime on the original IR (f32 inference): on random images and, with
   ``--check-video`` / ``--check-gt``, on real person crops cut from a video by its MOTChallenge ground truth
   (max abs difference, cosine);
5. converts it to TensorFlow Lite (float32 weights, batch resizable) and checks that the same way; writes the
   SavedModel, the ``.tflite`` and ``model.json`` (the checks' figures) to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import openvino_ir  # noqa: E402

HEIGHT, WIDTH = 256, 128
#: What this script was written against.
SOURCE_SHA256 = {
    "person-reidentification-retail-0287.xml": "09af746c1068a3e89355e1f0226d3d6982dc1cd77634b1f70a40f1f654a94be1",
    "person-reidentification-retail-0287.bin": "7f53d18d11253455e0e11646b2176cf6509cc7c97cb5376f9b91b4c41e09a06c",
    "person-reidentification-retail-0277.xml": "82039b1bb986231c50345550e59def94e63579998e9cddbd1a312f293eb87729",
    "person-reidentification-retail-0277.bin": "6bb69e09d07733cc3896b29081d2627f92db7b9aacd50f1a8c3df491cb10f1b7",
}
#: Where each IR was copied from (public GitHub repositories holding Open Model Zoo files).
SOURCES = {
    "person-reidentification-retail-0287": "Intel Open Model Zoo person-reidentification-retail-0287 (OpenVINO IR "
    "FP32), copied from GitHub yas-sim/object-tracking-line-crossing-area-intrusion @ 7d474dd0fb35, intel/",
    "person-reidentification-retail-0277": "Intel Open Model Zoo person-reidentification-retail-0277 (OpenVINO IR "
    "FP16), copied from GitHub yas-sim/object-tracking-line-crossing-area-intrusion @ "
    "798e80bd3184f97da5891a805f79198b5bc6d279, intel/person-reidentification-retail-0277/FP16/",
}
ARCHITECTURE = {
    "person-reidentification-retail-0287": "OmniScaleNet-style CNN (Intel Open Model Zoo, Market-1501 rank-1 ~92 %)",
    "person-reidentification-retail-0277": "OSNet-style CNN, ~3.5x the FLOPs of 0287 (Intel Open Model Zoo, "
    "Market-1501 rank-1 ~96 %)",
}


def package_name(model: str) -> str:
    """``person-reidentification-retail-0277`` -> ``person_reid_0277`` (the folder under crowdcount/models)."""
    return "person_reid_" + model.rsplit("-", 1)[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_ir(xml: Path) -> tuple[Any, str]:
    """The IR read by ``openvino`` and the name of its single ``Result`` (what :class:`Embedder` rebuilds).
    Exits with one line when the files or the network's input are not what this script converts."""
    import openvino as ov

    for path in (xml, xml.with_suffix(".bin")):
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (the IR's .xml and its .bin beside it)")
    try:
        model = ov.Core().read_model(str(xml))
    except RuntimeError as error:
        reason = [line for line in str(error).splitlines() if line.strip() and not line.startswith("Exception from")]
        raise SystemExit(f"{xml}: openvino cannot read it: {(reason or ['?'])[-1].strip()}") from None
    results = model.get_results()
    dims = [d.get_length() if d.is_static else -1 for d in model.inputs[0].get_partial_shape()] if model.inputs else []
    if len(model.inputs) != 1 or len(dims) != 4 or dims[1:] != [3, HEIGHT, WIDTH]:
        raise SystemExit(f"{xml.name}: expected one input [N, 3, {HEIGHT}, {WIDTH}], got {model.inputs}")
    if len(results) != 1:
        raise SystemExit(f"{xml.name}: expected one output, got {len(results)}")
    return model, openvino_ir.node_name(results[0])


class Embedder:
    """The module saved: ``serving_default`` uint8 RGB ``[N, 256, 128, 3]`` -> ``embeddings`` ``[N, 256]``: the IR
    ``model`` up to its Result ``output``, rebuilt by :func:`openvino_ir.rebuild` (traced here, so an op it cannot
    rebuild stops the script before anything is written)."""

    def __init__(self, tf: Any, model: Any, output: str) -> None:
        self.module = tf.Module()

        # autograph off: rebuild has no tensor-dependent Python control flow, and its UnsupportedOp reaches main()
        # as itself (autograph would wrap it in a StagingError)
        @tf.function(
            input_signature=[tf.TensorSpec([None, HEIGHT, WIDTH, 3], tf.uint8, name="images")], autograph=False
        )
        def serve(images: Any) -> dict[str, Any]:
            bgr = tf.reverse(tf.cast(images, tf.float32), axis=[-1])
            (embeddings,) = openvino_ir.rebuild(tf, model, [output], bgr)
            return {"embeddings": tf.identity(embeddings, name="embeddings")}

        serve.get_concrete_function()
        self.module.serve = serve


def openvino_reference(xml: Path) -> Any:
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    model.reshape([-1, 3, HEIGHT, WIDTH])
    # f32 explicitly: on CPUs with bf16 / fp16 support OpenVINO would otherwise lower the precision
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def run(rgb: np.ndarray) -> np.ndarray:
        bgr_nchw = rgb[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
        return np.asarray(compiled(bgr_nchw)[0])

    return run


def gt_crops(video: Path, gt: Path, scale: float, frames: int, every: int) -> np.ndarray:
    """Person crops (uint8 RGB 256x128) cut from ``video`` by MOTChallenge ground truth, every ``every`` frames."""
    import cv2

    rows = np.loadtxt(gt, delimiter=",", ndmin=2)
    capture = cv2.VideoCapture(str(video))
    crops = []
    for index in range(1, frames + 1):
        ok, frame = capture.read()
        if not ok:
            break
        if index % every:
            continue
        rgb = frame[..., ::-1]
        for row in rows[rows[:, 0] == index]:
            left, top, width, height = row[2:6] * scale
            x0, y0 = max(0, int(left)), max(0, int(top))
            x1, y1 = min(rgb.shape[1], int(left + width)), min(rgb.shape[0], int(top + height))
            if x1 - x0 >= 8 and y1 - y0 >= 16:
                crops.append(cv2.resize(rgb[y0:y1, x0:x1], (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR))
    capture.release()
    return np.array(crops, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)


def compare(name: str, got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    cosine = np.sum(unit(got) * unit(want), axis=1)
    stats = {
        "max_abs_diff": float(np.abs(got - want).max()),
        "max_abs_value": float(np.abs(want).max()),
        "min_cosine": float(cosine.min()),
        "crops": len(got),
    }
    print(f"{name}: {stats}")
    return stats


def tflite_run(tf: Any, path: Path) -> Any:
    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=2)
    index = interpreter.get_input_details()[0]["index"]

    def run(images: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(index, list(images.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, images)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xml", type=Path, help="person-reidentification-retail-NNNN.xml (the .bin beside it)")
    parser.add_argument("--out", type=Path, default=None, help="default: crowdcount/models/person_reid_NNNN")
    parser.add_argument("--check-video", type=Path, default=None)
    parser.add_argument("--check-gt", type=Path, default=None)
    parser.add_argument("--check-scale", type=float, default=0.625)
    parser.add_argument("--check-frames", type=int, default=124)
    args = parser.parse_args()

    import tensorflow as tf

    model = args.xml.stem
    name = package_name(model)
    out_dir = args.out or REPO / "crowdcount" / "models" / name
    ir, output = read_ir(args.xml)
    for path in (args.xml, args.xml.with_suffix(".bin")):
        digest = sha256(path)
        if SOURCE_SHA256.get(path.name) != digest:
            print(f"warning: {path.name} sha256 {digest} is not the one this script was written against")
    try:
        embedder = Embedder(tf, ir, output)
    except openvino_ir.UnsupportedOp as error:
        raise SystemExit(f"{args.xml.name}: cannot rebuild: {error}") from None
    reference = openvino_reference(args.xml)

    rng = np.random.default_rng(0)
    checks: dict[str, Any] = {}
    random_images = rng.integers(0, 256, (8, HEIGHT, WIDTH, 3), dtype=np.uint8)
    want = reference(random_images)
    got = embedder.module.serve(tf.constant(random_images))["embeddings"].numpy()
    checks["saved_model_random"] = compare("tensorflow vs openvino, random images", got, want)
    crops = None
    if args.check_video and args.check_gt:
        crops = gt_crops(args.check_video, args.check_gt, args.check_scale, args.check_frames, every=10)
        want_crops = reference(crops)
        got_crops = np.concatenate(
            [
                embedder.module.serve(tf.constant(crops[i : i + 32]))["embeddings"].numpy()
                for i in range(0, len(crops), 32)
            ]
        )
        checks["saved_model_crops"] = compare("tensorflow vs openvino, real crops", got_crops, want_crops)

    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / name
        saved = staging / "saved_model"
        tf.saved_model.save(embedder.module, str(saved), signatures={"serving_default": embedder.module.serve})
        loaded = tf.saved_model.load(str(saved)).signatures["serving_default"]
        again = loaded(images=tf.constant(random_images))["embeddings"].numpy()
        compare("saved model reloaded vs in memory", again, got)

        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        tflite_file = staging / f"{name}.tflite"
        tflite_file.write_bytes(converter.convert())
        run = tflite_run(tf, tflite_file)
        checks["tflite_random"] = compare("tflite vs openvino, random images", run(random_images), want)
        if crops is not None:
            tflite_crops = np.concatenate([run(crops[i : i + 32]) for i in range(0, len(crops), 32)])
            checks["tflite_crops"] = compare("tflite vs openvino, real crops", tflite_crops, want_crops)

        info = {
            "name": model,
            "architecture": ARCHITECTURE.get(model, "Intel Open Model Zoo person ReID CNN")
            + ", person crop -> 256-d appearance vector",
            "input": "uint8 RGB [N, 256, 128, 3] (height 256, width 128); normalisation inside the graph",
            "output": "embeddings float32 [N, 256], compare by cosine",
            "tflite": {"file": tflite_file.name, "input": "uint8 RGB [N, 256, 128, 3], batch resizable"},
            "source": SOURCES.get(model, f"Intel Open Model Zoo {model} (OpenVINO IR)"),
            "source_sha256": {k: v for k, v in SOURCE_SHA256.items() if k.startswith(model)},
            "licence": "Apache-2.0",
            "converted_by": "scripts/convert_reid.py",
            "tensorflow": tf.__version__,
            "checks_against_openvino": checks,
        }
        (staging / "model.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(staging, out_dir)
    for path in sorted(out_dir.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(out_dir)}  {path.stat().st_size} bytes  sha256 {sha256(path)}")


if __name__ == "__main__":
    main()
