#!/usr/bin/env python3
"""Convert Intel Open Model Zoo ``person-detection-0203`` (OpenVINO IR FP16, Apache-2.0) into the TensorFlow files
crowdcount ships in ``crowdcount/models/person_detection_0203/``: a SavedModel and a TensorFlow Lite file (both
taking any input size with sides multiples of 32), plus the post-processing constants in ``model.json``. The IR
itself is not shipped. Run once, by a maintainer; the result is committed.

    pip install tensorflow==2.21.0 openvino opencv-python
    # the IR: Open Model Zoo's FP16 files (provenance and sha256 in MODELS.md), e.g. in ir/
    python scripts/convert_person_detection.py --xml ir/person-detection-0203.xml [--data ../shared/data]

The IR ends in post-processing that TensorFlow Lite cannot express well (per-level TopK on dynamic sizes,
NonZero, NonMaxSuppression, shape arithmetic): the script CUTS the network at the raw head outputs of each level
(classification logits, centerness logits, box deltas: found by walking back from the Sigmoid and Exp ops to the
last 4-D tensors), rebuilds everything before the cut with TensorFlow ops (``scripts/openvino_ir.py``, NHWC), and
reads the post-processing constants from the IR's Const nodes (anchors of each level, delta means / stds, the
width / height clamp, the per-level top-k, NMS IoU and score thresholds, max boxes). The post-processing itself
is re-implemented in numpy (``crowdcount/detectors/person_tf.py``: score = sigmoid(cls) * sigmoid(centerness)
as the IR computes it, per-level top-k, mmdetection ``delta2bbox``, ``cv2.dnn.NMSBoxes``).

Checks (printed and written to model.json): on real frames (PETS09 at 480x352, MOT17-09 at 960x544) the final
boxes of TF + numpy (SavedModel and TFLite) against the full IR under OpenVINO (f32 inference, and the CPU
plugin's default precision, which is bf16 on CPUs with AVX512-BF16 / AMX): same number of boxes scoring >= 0.2,
each matched at IoU >= 0.95, scores within 0.02; and the OpenVINO runtime reading the converted TFLite file.
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import openvino_ir  # noqa: E402

from crowdcount.detectors.person_tf import postprocess  # noqa: E402

NAME = "person-detection-0203"
MODEL_DIR = REPO / "crowdcount" / "models" / "person_detection_0203"
#: What this script was written against (the IR shipped in crowdcount/models/person_detection_0203).
SOURCE_SHA256 = {
    "person-detection-0203.xml": "33c4383fdcd5697819e6c1e3e4ed6ce341a85abf70ceb972d88b1eb991a4c760",
    "person-detection-0203.bin": "8beee3c9fe0a35efc17c4dd8f851caf69ecbb09a0578c6bf1631990857aeda8e",
}
#: Check clips (research data, never shipped) and the input size each is run at.
CHECK_CLIPS = (("pets09/vtest.avi", (480, 352)), ("mot17/MOT17-09/MOT17-09-DPM-raw.mp4", (960, 544)))
#: Pass criteria of the box checks.
SCORE_FLOOR, MIN_IOU, MAX_SCORE_DIFF = 0.2, 0.95, 0.02


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _walk_to_4d(op: Any) -> Any:
    """Follow input 0 back from ``op`` to the first op with a 4-D output (a head's raw map)."""
    while op.get_output_partial_shape(0).rank.get_length() != 4:
        op = op.input(0).get_source_output().get_node()
    return op


def _const_values(op: Any) -> list[np.ndarray]:
    return [
        np.array(i.get_source_output().get_node().get_data())
        for i in op.inputs()
        if i.get_source_output().get_node().get_type_name() == "Constant"
    ]


def analyse(model: Any) -> tuple[list[list[str]], dict[str, Any]]:
    """The head ops to cut at (per level, strides ascending: cls, centerness, deltas) and the post-processing
    constants, read from the IR (at its native input size)."""
    ops = model.get_ordered_ops()
    in_h = model.inputs[0].get_partial_shape()[2].get_length()
    heads: dict[int, dict[str, str]] = {}

    sizes: dict[int, int] = {}

    def level_of(head: Any) -> int:
        shape = head.get_output_partial_shape(0)
        rows, cols = shape[2].get_length(), shape[3].get_length()
        stride = 2 ** round(np.log2(in_h / rows))  # the last levels' sides are rounded up
        sizes[stride] = rows * cols
        return stride

    for op in ops:
        kind = op.get_type_name()
        if kind == "Sigmoid":
            role = "cls" if op.get_output_partial_shape(0).rank.get_length() == 2 else "centerness"
        elif kind == "Exp":
            role = "deltas"
        else:
            continue
        head = _walk_to_4d(op.input(0).get_source_output().get_node())
        previous = heads.setdefault(level_of(head), {}).setdefault(role, head.get_friendly_name())
        if previous != head.get_friendly_name():
            raise SystemExit(f"level {level_of(head)} has two {role} heads: {previous}, {head.get_friendly_name()}")
    strides = sorted(heads)
    cut = [[heads[s]["cls"], heads[s]["centerness"], heads[s]["deltas"]] for s in strides]

    anchors: dict[int, list[list[float]]] = {}
    stds, means, clamps, top_ks = set(), set(), set(), set()
    nms: dict[str, Any] = {}
    for op in ops:
        kind = op.get_type_name()
        consts = _const_values(op)
        if kind == "Add" and consts and consts[0].ndim == 3 and consts[0].shape[0] == 1 and consts[0].shape[2] == 4:
            other = next(i for i in op.inputs() if i.get_source_output().get_node().get_type_name() != "Constant")
            cells = other.get_partial_shape()[0].get_length()
            stride = next(s for s in strides if sizes[s] == cells)
            anchors[stride] = consts[0][0].astype(np.float32).tolist()
        elif kind == "Tile" and consts and consts[0].size == 4:
            consumer = next(iter(op.output(0).get_target_inputs())).get_node().get_type_name()
            (stds if consumer == "Multiply" else means).add(tuple(float(v) for v in consts[0].reshape(-1)))
        elif kind == "Clamp" and op.get_attributes()["min"] == -op.get_attributes()["max"]:
            clamps.add(float(op.get_attributes()["max"]))
        elif kind == "TopK" and op.input(0).get_source_output().get_node().get_type_name() == "ReduceMax":
            for anc in openvino_ir.ancestors(model, [op.input(1).get_source_output().get_node().get_friendly_name()]):
                if anc.get_type_name() == "Concat":  # k = min(Concat(pre_nms_top_k, number of anchors))
                    top_ks.update(int(v.reshape(-1)[0]) for v in _const_values(anc) if v.size == 1)
        elif kind == "NonMaxSuppression":
            values = [np.array(op.input(i).get_source_output().get_node().get_data()).reshape(-1)[0] for i in (2, 3, 4)]
            nms = {"max_boxes": int(values[0]), "iou_threshold": float(values[1]), "score_threshold": float(values[2])}
            attrs = op.get_attributes()
            if attrs["box_encoding"] != "corner":
                raise SystemExit(f"NMS box encoding {attrs['box_encoding']}")
    if sorted(anchors) != strides or len(stds) != 1 or len(means) != 1 or len(clamps) != 1 or len(top_ks) != 1:
        raise SystemExit(f"unexpected post-processing: {anchors.keys()} {stds} {means} {clamps} {top_ks}")
    if not nms:
        raise SystemExit("no NonMaxSuppression in the IR")
    post = {
        "levels": [{"stride": s, "anchors": anchors[s]} for s in strides],
        "stds": list(stds.pop()),
        "means": list(means.pop()),
        "wh_clamp": clamps.pop(),
        "pre_nms_top_k": top_ks.pop(),
        "score": "sigmoid(cls) * sigmoid(centerness)",
        **nms,
    }
    return cut, post


class Network:
    """The module saved: ``serving_default`` uint8 BGR ``[1, H, W, 3]`` -> ``stride{s}`` ``[1, h, w, 18]``."""

    def __init__(self, tf: Any, model: Any, cut: list[list[str]], strides: list[int]) -> None:
        self.module = tf.Module()

        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="images")])
        def serve(images: Any) -> dict[str, Any]:
            flat = [name for level in cut for name in level]
            maps = openvino_ir.rebuild(tf, model, flat, tf.cast(images, tf.float32), half_weights=True)
            return {
                f"stride{s}": tf.concat(maps[3 * i : 3 * i + 3], axis=-1, name=f"stride{s}")
                for i, s in enumerate(strides)
            }

        self.module.serve = serve


def read_frames(path: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` BGR frames spread over the clip, resized to ``size`` (INTER_AREA, as the detector does)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    frames = []
    for index in np.linspace(0, total - 1, count).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    capture.release()
    if not frames:
        raise SystemExit(f"cannot read frames from {path}")
    return frames


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def compare_boxes(got: np.ndarray, want: np.ndarray, floor: float = SCORE_FLOOR) -> dict[str, Any]:
    """Boxes scoring >= ``floor`` of ``got`` matched one to one (greedy by IoU) to those of ``want``."""
    got, want = got[got[:, 4] >= floor], want[want[:, 4] >= floor]
    stats: dict[str, Any] = {"count_got": len(got), "count_want": len(want), "min_iou": 1.0, "max_score_diff": 0.0}
    if len(got) and len(want):
        iou = iou_matrix(want, got)
        used: set[int] = set()
        for i in np.argsort(-want[:, 4]):
            order = [j for j in np.argsort(-iou[i]) if j not in used]
            if not order:
                stats["min_iou"] = 0.0
                continue
            j = order[0]
            used.add(j)
            stats["min_iou"] = min(stats["min_iou"], float(iou[i, j]))
            stats["max_score_diff"] = max(stats["max_score_diff"], float(abs(want[i, 4] - got[j, 4])))
    stats["ok"] = bool(
        stats["count_got"] == stats["count_want"]
        and stats["min_iou"] >= MIN_IOU
        and stats["max_score_diff"] <= MAX_SCORE_DIFF
    )
    return stats


def merge(stats: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "frames": len(stats),
        "boxes": int(sum(s["count_want"] for s in stats)),
        "count_mismatches": int(sum(s["count_got"] != s["count_want"] for s in stats)),
        "min_iou": float(f"{min(s['min_iou'] for s in stats):.4g}"),
        "max_score_diff": float(f"{max(s['max_score_diff'] for s in stats):.3g}"),
        "ok": all(s["ok"] for s in stats),
    }


def openvino_full(xml: Path, precision: str | None) -> Any:
    """The full IR (with its own post-processing) under OpenVINO: ``bgr -> [K, 5]``."""
    import openvino as ov

    core = ov.Core()
    compiled: dict[tuple[int, int], Any] = {}

    def run(bgr: np.ndarray) -> np.ndarray:
        key = bgr.shape[:2]
        if key not in compiled:
            model = core.read_model(str(xml))
            model.reshape({model.inputs[0].get_any_name(): [1, 3, *key]})
            config = {"INFERENCE_PRECISION_HINT": precision} if precision else {}
            compiled[key] = core.compile_model(model, "CPU", config)
        out = compiled[key](bgr.transpose(2, 0, 1)[None].astype(np.float32))
        return np.asarray(out[compiled[key].output("boxes")], np.float32).reshape(-1, 5)

    return run


def openvino_converted(path: Path, strides: list[int]) -> Any:
    """OpenVINO reading the converted file (TFLite or SavedModel dir): ``bgr -> raw maps``."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    compiled: dict[tuple[int, int], Any] = {}

    def run(bgr: np.ndarray) -> list[np.ndarray]:
        key = bgr.shape[:2]
        if key not in compiled:
            m = model.clone()
            m.reshape({m.inputs[0].get_any_name(): [1, *key, 3]})
            compiled[key] = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = compiled[key](bgr[None])
        # a TFLite file's outputs come as PartitionedCall:N: order the levels by their size (strides ascending)
        maps = sorted((np.asarray(out[o]) for o in compiled[key].outputs), key=lambda m: -m.shape[1] * m.shape[2])
        if len(maps) != len(strides):
            raise SystemExit(f"{path}: {len(maps)} outputs, expected {len(strides)}")
        return maps

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xml", type=Path, required=True, help="the FP16 IR's .xml (its .bin beside it)")
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--frames", type=int, default=8, help="check frames per clip")
    args = parser.parse_args()

    import openvino as ov
    import tensorflow as tf

    sources = {}
    for path in (args.xml, args.xml.with_suffix(".bin")):
        sources[path.name] = sha256(path)
        if SOURCE_SHA256.get(path.name) != sources[path.name]:
            print(f"warning: {path.name} sha256 {sources[path.name]} is not the one this script was written against")
    model = ov.Core().read_model(str(args.xml))
    cut, post = analyse(model)
    strides = [lv["stride"] for lv in post["levels"]]
    print(f"cut at {cut}")
    print(f"post-processing from the IR: { {k: v for k, v in post.items() if k != 'levels'} }")
    for level in post["levels"]:
        print(f"  stride {level['stride']}: anchors {level['anchors']}")
    network = Network(tf, model, cut, strides)

    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        saved = staging / "saved_model"
        tf.saved_model.save(network.module, str(saved), signatures={"serving_default": network.module.serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        # float16 weights (the IR's own precision: lossless), computed in float32 (dequantised at load)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        tflite_file = staging / f"{NAME}.tflite"
        tflite_file.write_bytes(converter.convert())

        loaded = tf.saved_model.load(str(saved)).signatures["serving_default"]
        interpreter = tf.lite.Interpreter(model_path=str(tflite_file), num_threads=2)
        lite = interpreter.get_signature_runner("serving_default")
        runtimes = {
            "saved_model": lambda bgr: [loaded(images=tf.constant(bgr[None]))[f"stride{s}"].numpy() for s in strides],
            "tflite": lambda bgr: [lite(images=bgr[None])[f"stride{s}"] for s in strides],
            "openvino_reads_tflite": openvino_converted(tflite_file, strides),
            "openvino_reads_saved_model": openvino_converted(saved, strides),
        }
        references = {
            "openvino_ir_f32": openvino_full(args.xml, "f32"),
            "openvino_ir_default": openvino_full(args.xml, None),
        }
        checks: dict[str, Any] = {}
        raw_diff: dict[str, float] = {}
        for clip, size in CHECK_CLIPS:
            frames = read_frames(args.data / clip, size, args.frames)
            label = f"{Path(clip).stem}@{size[0]}x{size[1]}"
            want = {ref: [run(f) for f in frames] for ref, run in references.items()}
            for name, runtime in runtimes.items():
                maps = [runtime(f) for f in frames]
                if name != "saved_model":
                    base = [runtimes["saved_model"](f) for f in frames]
                    raw_diff[f"{name}_vs_saved_model@{label}"] = float(
                        max(
                            np.abs(a - b).max()
                            for m, n in zip(maps, base, strict=True)
                            for a, b in zip(m, n, strict=True)
                        )
                    )
                got = [postprocess(m, size[0], size[1], post) for m in maps]
                for ref in references:
                    stats = merge([compare_boxes(g, w) for g, w in zip(got, want[ref], strict=True)])
                    checks[f"{name}_vs_{ref}@{label}"] = stats
                    print(f"{name:22s} vs {ref:20s} {label:22s} {stats}")
        for key, value in raw_diff.items():
            print(f"raw maps max abs diff {key}: {value:.2e}")

        info = {
            "name": NAME,
            "architecture": "ATSS, MobileNetV2 + FPN, GroupNorm head, 5 levels (strides 8-128), 3 anchors a cell",
            "source": "Intel Open Model Zoo person-detection-0203 (OpenVINO IR FP16), the IR shipped beside",
            "source_sha256": sources,
            "licence": "Apache-2.0",
            "tensorflow": {
                "converted_by": "scripts/convert_person_detection.py (with scripts/openvino_ir.py)",
                "versions": {"tensorflow": tf.__version__, "openvino": ov.__version__, "numpy": np.__version__},
                "saved_model": "saved_model",
                "tflite": tflite_file.name,
                "input": "images: uint8 BGR [1, H, W, 3], H and W multiples of 32 (resizable); normalisation inside",
                "outputs": "stride8 ... stride128: float32 [1, ceil(H/s), ceil(W/s), 18] raw head maps: per cell 3 "
                "classification logits, 3 centerness logits, 12 box deltas (4 per anchor, anchor-major)",
                "cut_at_ir_ops": cut,
                "postprocess": post,
                "checks": {
                    "criteria": f"boxes scoring >= {SCORE_FLOOR}: same count, matched at IoU >= {MIN_IOU}, "
                    f"scores within {MAX_SCORE_DIFF}",
                    "boxes": checks,
                    "raw_max_abs_diff": raw_diff,
                },
            },
        }
        files = [saved, tflite_file]
        args.out.mkdir(parents=True, exist_ok=True)
        for path in files:
            target = args.out / path.name
            if target.is_dir():
                shutil.rmtree(target)
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target)
        outputs = {
            str(p.relative_to(args.out)): sha256(p)
            for f in files
            for p in ([args.out / f.name] if f.is_file() else sorted((args.out / f.name).rglob("*")))
            if p.is_file()
        }
        info["tensorflow"]["sha256"] = outputs
        (args.out / "model.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    for name, digest in info["tensorflow"]["sha256"].items():
        print(f"{name}  {(args.out / name).stat().st_size} bytes  sha256 {digest}")
    failed = [k for k, v in checks.items() if not v["ok"] and "default" not in k]
    if failed:
        raise SystemExit(f"checks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
