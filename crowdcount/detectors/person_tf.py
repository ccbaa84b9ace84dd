"""``person-detection-0203`` under TensorFlow: the network converted from the OpenVINO IR up to its raw head
outputs, and the IR's post-processing (ATSS anchors, delta decoding, per-level top-k, NMS) in numpy.

The files live in ``crowdcount/models/person_detection_0203/`` beside the IR (made by
``scripts/convert_person_detection.py``; provenance in ``MODELS.md``):

- ``saved_model/``: signature ``serving_default``, input ``images`` uint8 **BGR** ``[1, H, W, 3]`` (H and W
  multiples of 32, any size; normalisation inside the graph), outputs ``stride8`` ... ``stride128`` float32
  ``[1, H / s, W / s, 18]`` (``s`` rounded up): per cell, 3 classification logits (one per anchor), 3 centerness
  logits, 12 box deltas (4 per anchor);
- ``person-detection-0203.tflite``: the same graph for TensorFlow Lite, input resizable;
- ``model.json``: the post-processing constants read from the IR (anchors per level, delta stds, clamp, top-k,
  NMS IoU, score threshold, max boxes) and the checks against OpenVINO.

:class:`PersonDetection0203TF` has the call interface of the original IR under OpenVINO (which is not
shipped): BGR uint8 ``H x W x 3`` in, ``[K, 5]`` float32
(x1, y1, x2, y2 in input pixels, score) out, by descending score.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.omz_person import model_dir
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "openvino", "tflite", "saved_model")
#: NMS as crowdcount runs it: people in crowds overlap (the IR's own was IoU 0.6, 100 boxes).
NMS_IOU = 0.7
MAX_BOXES = 300
NAME = "person-detection-0203"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def level_anchors(base: np.ndarray, stride: int, rows: int, cols: int) -> np.ndarray:
    """Anchors ``(rows * cols * A, 4)`` xyxy of one level: ``base`` ``(A, 4)`` shifted to every cell's corner
    (``x * stride, y * stride``, mmdetection's centre offset 0), in the order of the flattened head maps."""
    ys, xs = np.meshgrid(np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij")
    shifts = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], axis=1) * np.float32(stride)
    return (shifts[:, None, :] + np.asarray(base, np.float32)[None]).reshape(-1, 4)


def decode_deltas(anchors: np.ndarray, deltas: np.ndarray, post: dict[str, Any], width: int, height: int) -> np.ndarray:
    """mmdetection's ``delta2bbox`` as the IR computes it: ``(K, 4)`` xyxy clipped to the input."""
    d = deltas * np.asarray(post["stds"], np.float32) + np.asarray(post["means"], np.float32)
    clamp = np.float32(post["wh_clamp"])
    dw, dh = np.clip(d[:, 2], -clamp, clamp), np.clip(d[:, 3], -clamp, clamp)
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    px, py = (anchors[:, 0] + anchors[:, 2]) * 0.5, (anchors[:, 1] + anchors[:, 3]) * 0.5
    gx, gy = px + pw * d[:, 0], py + ph * d[:, 1]
    gw, gh = pw * np.exp(dw), ph * np.exp(dh)
    boxes = np.stack([gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes


def postprocess(
    maps: list[np.ndarray],
    width: int,
    height: int,
    post: dict[str, Any],
    max_boxes: int | None = None,
    iou_threshold: float | None = None,
) -> np.ndarray:
    """The IR's post-processing on the raw maps (``[1, h, w, 18]`` per level, strides ascending): ``[K, 5]``
    boxes (input pixels) and scores, by descending score.

    Per level: score = sigmoid(cls) * sigmoid(centerness), the ``pre_nms_top_k`` best anchors decoded; then all
    levels together: scores above ``score_threshold``, greedy NMS at ``iou_threshold`` (``cv2.dnn.NMSBoxes``),
    at most ``max_boxes`` kept (the IR's own IoU and 100 boxes unless given: crowds need more)."""
    import cv2

    num_anchors = len(post["levels"][0]["anchors"])
    all_boxes, all_scores = [], []
    for raw, level in zip(maps, post["levels"], strict=True):
        rows, cols = raw.shape[1:3]
        flat = raw.reshape(rows * cols, -1).astype(np.float32)
        cls = flat[:, :num_anchors].reshape(-1)
        ctr = flat[:, num_anchors : 2 * num_anchors].reshape(-1)
        deltas = flat[:, 2 * num_anchors :].reshape(-1, 4)
        scores = _sigmoid(cls) * _sigmoid(ctr)
        top_k = int(post["pre_nms_top_k"])
        keep = np.argpartition(-scores, top_k - 1)[:top_k] if len(scores) > top_k else np.arange(len(scores))
        keep = keep[scores[keep] > post["score_threshold"]]
        if not len(keep):
            continue
        anchors = level_anchors(np.asarray(level["anchors"], np.float32), int(level["stride"]), rows, cols)[keep]
        all_boxes.append(decode_deltas(anchors, deltas[keep], post, width, height))
        all_scores.append(scores[keep])
    if not all_boxes:
        return np.zeros((0, 5), np.float32)
    boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
    kept = np.asarray(
        cv2.dnn.NMSBoxes(
            xywh.tolist(),
            scores.astype(np.float64).tolist(),
            0.0,
            float(post["iou_threshold"] if iou_threshold is None else iou_threshold),
        ),
        np.int64,
    ).reshape(-1)
    kept = kept[np.argsort(-scores[kept], kind="stable")][: int(max_boxes or post["max_boxes"])]
    return np.concatenate([boxes[kept], scores[kept, None]], axis=1).astype(np.float32)


def _cannot_load(path: Path, exc: Exception) -> DetectorError:
    """One line for a model file a runtime refused (native messages are long and multi-line)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DetectorError(
        f"the person model {str(path)!r} cannot be loaded: {first[:200]}",
        "reinstall crowdcount (the model files may be corrupt)",
    )


def resolve_runtime(runtime: str) -> str:
    """``auto``: TensorFlow on the SavedModel where an NVIDIA GPU is present, else OpenVINO (when installed),
    else TensorFlow Lite."""
    if runtime != "auto":
        return runtime
    if Path("/dev/nvidiactl").exists() and os.environ.get("CUDA_VISIBLE_DEVICES", "0") not in ("", "-1"):
        return "saved_model"
    import importlib.util

    return "openvino" if importlib.util.find_spec("openvino") is not None else "tflite"


class PersonDetection0203TF:
    """person-detection-0203 with the numpy post-processing, run by OpenVINO reading the TensorFlow Lite file
    (``openvino``: fastest on CPUs), TensorFlow Lite (``tflite``) or TensorFlow on the SavedModel
    (``saved_model``: GPUs). Files are loaded on first use. ``max_boxes`` and ``iou_threshold`` default to
    300 and 0.7 (crowds)."""

    def __init__(
        self,
        runtime: str = "auto",
        num_threads: int | None = None,
        folder: Path | None = None,
        max_boxes: int | None = MAX_BOXES,
        iou_threshold: float | None = NMS_IOU,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        self.runtime = resolve_runtime(runtime)
        self.num_threads = num_threads or os.cpu_count() or 1
        self.folder = Path(folder) if folder is not None else model_dir()
        self.max_boxes = max_boxes
        self.iou_threshold = iou_threshold
        self.info: dict[str, Any] = {}
        self._compiled: dict[tuple[int, int], Any] = {}
        self._runner: Any = None
        self._tf: Any = None

    def load(self) -> None:
        """Read ``model.json`` and the TensorFlow files (a missing or corrupt file is a :class:`DetectorError`)."""
        if self._runner is not None:
            return
        card = self.folder / "model.json"
        try:
            self.info = json.loads(card.read_text(encoding="utf-8"))
            post = self.info["tensorflow"]["postprocess"]
            _ = [(lv["stride"], lv["anchors"]) for lv in post["levels"]]
        except FileNotFoundError:
            raise DetectorError(f"the person model card {str(card)!r} is missing", "reinstall crowdcount") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DetectorError(
                f"the person model card {str(card)!r} is unreadable ({type(exc).__name__}: {str(exc)[:100]})",
                "reinstall crowdcount",
            ) from None
        tf_info = self.info["tensorflow"]
        path = self.folder / (tf_info["saved_model"] if self.runtime == "saved_model" else tf_info["tflite"])
        if not path.exists():
            raise DetectorError(f"the person model file {str(path)!r} is missing", "reinstall crowdcount")
        if self.runtime == "openvino":
            self._load_openvino(path)
            return
        from crowdcount.detectors.tf_models import import_tensorflow, quiet_native_logs

        try:
            tf = import_tensorflow()
        except ImportError:
            raise DetectorError(
                "the TensorFlow runtime of the person model needs TensorFlow, which is not installed",
                "pip install tensorflow, or use runtime openvino",
            ) from None
        try:
            with quiet_native_logs():
                if self.runtime == "tflite":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=self.num_threads)
                    self._runner = interpreter.get_signature_runner("serving_default")
                else:
                    self._runner = tf.saved_model.load(str(path)).signatures["serving_default"]
        except Exception as exc:  # TensorFlow raises many types with long native messages
            raise _cannot_load(path, exc) from None
        self._tf = tf
        logger.info("loaded %s (%s, %d threads) from %s", NAME, self.runtime, self.num_threads, path)

    def _load_openvino(self, path: Path) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise DetectorError(
                "runtime openvino needs the OpenVINO runtime, which is not installed",
                "pip install openvino, or use runtime tflite",
            ) from None
        try:
            core = ov.Core()
            model = core.read_model(str(path))
        except Exception as exc:  # openvino raises RuntimeError subclasses with long native messages
            raise _cannot_load(path, exc) from None
        self._runner = (core, model)
        logger.info("loaded %s (openvino, %d threads) from %s", NAME, self.num_threads, path)

    def _openvino_maps(self, images: np.ndarray) -> list[np.ndarray]:
        _, height, width, _ = images.shape
        compiled = self._compiled.get((width, height))
        if compiled is None:
            core, model = self._runner
            model = model.clone()
            model.reshape({model.inputs[0].get_any_name(): [1, height, width, 3]})
            compiled = core.compile_model(
                model, "CPU", {"INFERENCE_NUM_THREADS": self.num_threads, "PERFORMANCE_HINT": "LATENCY"}
            )
            self._compiled[(width, height)] = compiled
        out = compiled(images)
        # the outputs' names are not kept by the TFLite reader: the levels are told apart by their size
        maps = [np.asarray(out[port]) for port in compiled.outputs]
        return sorted(maps, key=lambda m: -m.shape[1] * m.shape[2])

    def raw(self, bgr: np.ndarray) -> list[np.ndarray]:
        """The raw head maps ``[1, h, w, 18]`` per level (strides ascending) of one BGR uint8 image."""
        self.load()
        height, width = bgr.shape[:2]
        if bgr.ndim != 3 or bgr.shape[2] != 3 or height % 32 or width % 32:
            raise ValueError(f"expected a BGR image with sides multiples of 32, got shape {bgr.shape}")
        images = np.ascontiguousarray(bgr[None], np.uint8)
        if self.runtime == "openvino":
            return self._openvino_maps(images)
        if self.runtime == "tflite":
            out = self._runner(images=images)
        else:
            out = {k: v.numpy() for k, v in self._runner(images=self._tf.constant(images)).items()}
        return [np.asarray(out[f"stride{lv['stride']}"]) for lv in self.info["tensorflow"]["postprocess"]["levels"]]

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """``[K, 5]`` boxes (input pixels) and scores of one BGR ``uint8`` image already at the input size."""
        maps = self.raw(bgr)
        height, width = bgr.shape[:2]
        post = self.info["tensorflow"]["postprocess"]
        return postprocess(maps, width, height, post, self.max_boxes, self.iou_threshold)
