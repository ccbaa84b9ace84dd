#!/usr/bin/env python3
"""Convert an Intel Open Model Zoo person ReID network (OpenVINO IR, Apache-2.0) into the models crowdcount ships
in ``crowdcount/models/person_reid_<NNNN>/``: a TensorFlow SavedModel (any batch) and a TensorFlow Lite file
(resizable batch, for CPUs). Written for ``person-reidentification-retail-0287`` (FP32 IR) and
``person-reidentification-retail-0277`` (FP16 IR: its ``Convert`` ops turn the float16 constants into float32,
and the TensorFlow model keeps float32 weights). Run once per model, by a maintainer; the result is committed.

    pip install tensorflow==2.21.0 openvino          # openvino only for the check against the original
    python scripts/convert_reid.py ../shared/models/person-reid/person-reidentification-retail-0287.xml \
        [--check-video ../shared/data/pets09/vtest.avi --check-gt ../shared/data/pets09/gt_frames001-124.txt]
    python scripts/convert_reid.py person-reidentification-retail-0277.xml --check-video ... --check-gt ...

No converter package is used (``openvino2tensorflow`` is unmaintained; the ONNX export of the same network gives
NaN under onnxruntime): the IR is a small XML graph plus a weight file, and this network uses 18 op types, so
the script

1. parses the IR (``<layers>``, ``<edges>``, ``Const`` values from the ``.bin``);
2. rebuilds it op by op with TensorFlow ops, keeping every 4-D feature map NHWC (TensorFlow's CPU layout):
   convolution weights ``[O, I, kh, kw]`` -> ``[kh, kw, I, O]``, depthwise ``GroupConvolution`` ->
   ``depthwise_conv2d``, explicit pads as ``tf.pad``, ``MVN`` (instance normalisation) as mean / variance over
   the mapped axes with the epsilon inside the square root, ``ShapeOf`` / ``Reshape`` / ``Gather`` /
   ``Concat`` on shapes computed from the tensors (so any batch works), axes of 4-D ops mapped NCHW -> NHWC;
3. wraps it as ``serving_default``: ``images`` uint8 RGB ``[N, 256, 128, 3]`` -> ``embeddings`` float32
   ``[N, 256]`` (not normalised; compare by cosine). The IR takes BGR 0-255 and does its own
   normalisation (BGR -> RGB, ImageNet mean / std, inside the graph): the wrapper only reverses the channels;
4. checks it against the ``openvino`` runtime on the original IR: on random images and, with ``--check-video``,
   on real person crops cut from a video by its MOTChallenge ground truth (max abs difference, cosine);
5. converts it to TensorFlow Lite (float32 weights, batch resizable) and checks that the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
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


NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}
DTYPES = {"f32": np.float32, "f16": np.float16, "i32": np.int32, "i64": np.int64}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class IR:
    """An OpenVINO IR (v11) graph: layers by id, their inputs ``(from layer, from port)`` by port, constants."""

    def __init__(self, xml: Path) -> None:
        root = ET.parse(xml).getroot()
        weights = xml.with_suffix(".bin").read_bytes()
        self.layers: dict[str, ET.Element] = {layer.get("id", ""): layer for layer in root.iter("layer")}
        inputs: dict[str, dict[int, tuple[str, str]]] = defaultdict(dict)
        for edge in root.iter("edge"):
            inputs[edge.get("to-layer", "")][int(edge.get("to-port", "0"))] = (
                edge.get("from-layer", ""),
                edge.get("from-port", ""),
            )
        self.inputs = {k: [v[p] for p in sorted(v)] for k, v in inputs.items()}
        self.consts: dict[str, np.ndarray] = {}
        for lid, layer in self.layers.items():
            if layer.get("type") == "Const":
                data = self.attrs(lid)
                dtype = DTYPES[data["element_type"]]
                shape = [int(s) for s in data["shape"].split(",") if s.strip()]
                count = int(data["size"]) // np.dtype(dtype).itemsize
                value = np.frombuffer(weights, dtype, count=count, offset=int(data["offset"]))
                self.consts[lid] = value.reshape(shape).copy()
        self.order = self._topological()

    def attrs(self, lid: str) -> dict[str, str]:
        data = self.layers[lid].find("data")
        return dict(data.attrib) if data is not None else {}

    def _topological(self) -> list[str]:
        done: set[str] = set()
        order: list[str] = []
        for start in self.layers:
            stack = [(start, False)]
            while stack:
                lid, expanded = stack.pop()
                if lid in done:
                    continue
                if expanded:
                    done.add(lid)
                    order.append(lid)
                    continue
                stack.append((lid, True))
                stack.extend((src, False) for src, _ in self.inputs.get(lid, []) if src not in done)
        return order

    def types(self) -> set[str]:
        return {layer.get("type", "") for layer in self.layers.values()}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


class Rebuilt:
    """The IR run with TensorFlow ops. 4-D activations are NHWC; constants stay numpy until used."""

    SUPPORTED = frozenset(
        [
            "Parameter",
            "Const",
            "Result",
            "Gather",
            "Subtract",
            "Multiply",
            "Add",
            "MVN",
            "Convolution",
            "GroupConvolution",
            "ReLU",
            "MaxPool",
            "ReduceMean",
            "Sigmoid",
            "Reshape",
            "ShapeOf",
            "AvgPool",
            "MatMul",
            "Concat",
            "PReLU",
            "Convert",
        ]
    )

    def __init__(self, ir: IR) -> None:
        unknown = ir.types() - self.SUPPORTED
        if unknown:
            raise SystemExit(f"unsupported IR op types: {', '.join(sorted(unknown))}")
        self.ir = ir

    def __call__(self, tf: Any, bgr_nhwc: Any) -> Any:
        ir = self.ir
        values: dict[tuple[str, str], Any] = {}
        result = None

        def rank(x: Any) -> int:
            return x.ndim if isinstance(x, np.ndarray) else x.shape.rank

        def tensor(x: Any) -> Any:
            if isinstance(x, np.ndarray):
                if x.ndim == 4 and x.dtype.kind == "f":
                    x = x.transpose(0, 2, 3, 1)
                return tf.constant(x)
            return x

        def axes(value: np.ndarray, of_rank: int) -> list[int]:
            got = [int(a) % of_rank for a in np.asarray(value).reshape(-1)]
            return [NCHW_TO_NHWC_AXIS[a] for a in got] if of_rank == 4 else got

        def to_nchw(x: Any) -> Any:
            return tf.transpose(x, [0, 3, 1, 2]) if rank(x) == 4 else x

        def to_nhwc(x: Any) -> Any:
            return tf.transpose(x, [0, 2, 3, 1]) if rank(x) == 4 else x

        for lid in ir.order:
            layer = ir.layers[lid]
            kind = layer.get("type")
            attrs = ir.attrs(lid)
            args = [values[src] for src in ir.inputs.get(lid, [])]
            out: Any
            if kind == "Const":
                out = ir.consts[lid]
            elif kind == "Parameter":
                out = bgr_nhwc
            elif kind == "Convert":
                target = DTYPES[attrs["destination_type"]]
                if isinstance(args[0], np.ndarray):
                    out = args[0].astype(target)
                else:
                    out = tf.cast(args[0], tf.as_dtype(target))
            elif kind == "Result":
                result = args[0]
                continue
            elif kind == "Gather":
                data, index, axis = args
                axis = int(np.asarray(axis).reshape(-1)[0])
                if isinstance(data, np.ndarray):
                    out = np.take(data, index, axis=axis)
                else:
                    out = tf.gather(data, tensor(np.asarray(index)), axis=axes(np.array([axis]), rank(data))[0])
            elif kind in ("Subtract", "Multiply", "Add"):
                a, b = (tensor(v) if rank(v) == 4 or not isinstance(v, np.ndarray) else tf.constant(v) for v in args)
                if rank(args[0]) != rank(args[1]) and max(rank(args[0]), rank(args[1])) == 4:
                    raise SystemExit(f"{kind} {lid}: broadcast between ranks {rank(args[0])}, {rank(args[1])}")
                out = {"Subtract": tf.subtract, "Multiply": tf.multiply, "Add": tf.add}[kind](a, b)
            elif kind == "MVN":
                x, ax = args
                if attrs.get("normalize_variance") != "true" or attrs.get("eps_mode") != "INSIDE_SQRT":
                    raise SystemExit(f"MVN {lid}: unsupported attributes {attrs}")
                red = axes(ax, rank(x))
                mean, var = tf.nn.moments(x, red, keepdims=True)
                out = (x - mean) / tf.sqrt(var + float(attrs["eps"]))
            elif kind == "Convolution":
                x, w = args
                if attrs.get("auto_pad", "explicit") != "explicit":
                    raise SystemExit(f"Convolution {lid}: auto_pad {attrs['auto_pad']}")
                top, left = _ints(attrs["pads_begin"])
                bottom, right = _ints(attrs["pads_end"])
                out = tf.nn.conv2d(
                    x,
                    tf.constant(w.transpose(2, 3, 1, 0)),
                    strides=[1, *_ints(attrs["strides"]), 1],
                    padding=[[0, 0], [top, bottom], [left, right], [0, 0]],
                    dilations=[1, *_ints(attrs["dilations"]), 1],
                )
            elif kind == "GroupConvolution":
                x, w = args
                groups, per_out, per_in, kh, kw = w.shape
                if per_out != 1 or per_in != 1:
                    raise SystemExit(f"GroupConvolution {lid}: not depthwise ({w.shape})")
                top, left = _ints(attrs["pads_begin"])
                bottom, right = _ints(attrs["pads_end"])
                if top or left or bottom or right:
                    x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
                stride = _ints(attrs["strides"])
                if stride[0] != stride[1]:
                    raise SystemExit(f"GroupConvolution {lid}: unequal strides")
                out = tf.nn.depthwise_conv2d(
                    x,
                    tf.constant(w.reshape(groups, kh, kw).transpose(1, 2, 0)[..., None]),
                    strides=[1, *stride, 1],
                    padding="VALID",
                    dilations=_ints(attrs["dilations"]),
                )
            elif kind == "ReLU":
                out = tf.nn.relu(args[0])
            elif kind == "Sigmoid":
                out = tf.sigmoid(args[0])
            elif kind in ("MaxPool", "AvgPool"):
                x = args[0]
                top, left = _ints(attrs["pads_begin"])
                bottom, right = _ints(attrs["pads_end"])
                if attrs.get("rounding_type", "floor") != "floor" or _ints(attrs.get("dilations", "1,1")) != [1, 1]:
                    raise SystemExit(f"{kind} {lid}: unsupported attributes {attrs}")
                if top or left or bottom or right:
                    if kind == "AvgPool":
                        raise SystemExit(f"AvgPool {lid}: padding not supported")
                    x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=-np.inf)
                pool = tf.nn.max_pool2d if kind == "MaxPool" else tf.nn.avg_pool2d
                out = pool(x, _ints(attrs["kernel"]), _ints(attrs["strides"]), "VALID")
            elif kind == "ReduceMean":
                x, ax = args
                out = tf.reduce_mean(x, axes(ax, rank(x)), keepdims=attrs.get("keep_dims") == "true")
            elif kind == "ShapeOf":
                x = args[0]
                shape = tf.shape(x, out_type=tf.int64)
                out = tf.gather(shape, [0, 3, 1, 2]) if rank(x) == 4 else shape
            elif kind == "Concat":
                if all(isinstance(a, np.ndarray) for a in args):
                    out = np.concatenate(args, axis=int(attrs["axis"]))
                else:
                    parts = [tf.cast(tensor(a), tf.int64) for a in args]
                    out = tf.concat(parts, axis=int(attrs["axis"]))
            elif kind == "Reshape":
                x, shape = args
                if attrs.get("special_zero") != "true" and isinstance(shape, np.ndarray) and (shape == 0).any():
                    raise SystemExit(f"Reshape {lid}: zero dims without special_zero")
                source = to_nchw(x)
                if isinstance(shape, np.ndarray):
                    dims = tf.shape(source, out_type=tf.int64)
                    target = tf.stack([dims[i] if int(s) == 0 else tf.constant(int(s), tf.int64)
                                       for i, s in enumerate(shape)])  # fmt: skip
                else:
                    target = shape  # computed from tensors (ShapeOf...): no zeros in this network
                out = tf.reshape(source, target)
                out.set_shape([None] * int(np.asarray(shape).shape[0] if isinstance(shape, np.ndarray)
                                          else shape.shape[0]))  # fmt: skip
                if out.shape.rank == 4:
                    out = to_nhwc(out)
            elif kind == "MatMul":
                a, b = args
                out = tf.linalg.matmul(
                    tensor(a),
                    tensor(b),
                    transpose_a=attrs.get("transpose_a") == "true",
                    transpose_b=attrs.get("transpose_b") == "true",
                )
            elif kind == "PReLU":
                x, slope = args
                slope_t = tf.constant(np.asarray(slope, np.float32).reshape(-1)[0] if np.size(slope) == 1 else slope)
                out = tf.where(x >= 0, x, x * slope_t)
            else:  # pragma: no cover - SUPPORTED is checked above
                raise SystemExit(f"op {kind}")
            outputs = layer.find("output")
            for port in outputs if outputs is not None else []:
                values[(lid, port.get("id", ""))] = out  # MaxPool's second port (indices) is never used
        if result is None:
            raise SystemExit("the IR has no Result")
        return result


class Embedder:
    """The module saved: ``serving_default`` uint8 RGB ``[N, 256, 128, 3]`` -> ``embeddings`` ``[N, 256]``."""

    def __init__(self, tf: Any, rebuilt: Rebuilt) -> None:
        self.module = tf.Module()

        @tf.function(input_signature=[tf.TensorSpec([None, HEIGHT, WIDTH, 3], tf.uint8, name="images")])
        def serve(images: Any) -> dict[str, Any]:
            bgr = tf.reverse(tf.cast(images, tf.float32), axis=[-1])
            return {"embeddings": tf.identity(rebuilt(tf, bgr), name="embeddings")}

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
    for path in (args.xml, args.xml.with_suffix(".bin")):
        digest = sha256(path)
        if SOURCE_SHA256.get(path.name) != digest:
            print(f"warning: {path.name} sha256 {digest} is not the one this script was written against")
    ir = IR(args.xml)
    embedder = Embedder(tf, Rebuilt(ir))
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
