"""Intel Open Model Zoo ``person-detection-0203`` (Apache-2.0), the default person model: ATSS with a
MobileNetV2 backbone and FPN, trained on people (not COCO's 80 classes), run by the OpenVINO runtime.

The files live in ``crowdcount/models/person_detection_0203/`` (copied and checked by
``scripts/convert_person_detection.py``; provenance and licence in ``MODELS.md``). The network takes BGR
``[1, 3, H, W]`` (0-255, normalisation inside the graph) at any size with H and W multiples of 32; it was
trained at 864x480. Its ``boxes`` output is ``[K, 5]``: x_min, y_min, x_max, y_max in input pixels and the score,
after the network's own NMS (set here to IoU 0.7 and at most 300 boxes; shipped as 0.6 and 100).

The input size comes from the frame (:func:`input_size`): its own resolution, aspect kept, rounded to multiples
of 32 and capped at ``max_pixels`` (1280x720 by default): a 480x360 frame runs at 480x352, a 960x540 one at
960x544, a 1920x1080 one at 1280x704. Chosen on development clips (docs/accuracy.md).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

NAME = "person-detection-0203"
#: The size the network was trained at.
TRAINED_SIZE = (864, 480)
#: Default cap on the network input, in pixels (1280x720).
MAX_PIXELS = 1280 * 720
#: Frames smaller than this are upscaled to about this many pixels.
MIN_PIXELS = 320 * 256
#: The network's own NMS, as shipped, keeps at most 100 boxes and drops a box overlapping a better one by IoU
#: > 0.6; crowdcount sets these (people in crowds overlap, and crowds hold more than 100 people).
NMS_IOU = 0.7
MAX_BOXES = 300

#: Provenance of the shipped weights (full model card: MODELS.md).
MODEL_INFO = {
    "name": NAME,
    "format": "openvino_ir",
    "source": "Intel Open Model Zoo person-detection-0203 (FP16 IR), checked and copied by "
    "scripts/convert_person_detection.py; shipped in crowdcount/models/person_detection_0203",
    "licence": "Apache-2.0",
    "classes": {"0": "person"},
}


def model_dir() -> Path:
    """The folder of the shipped person-detection-0203 files."""
    return Path(str(importlib.resources.files("crowdcount") / "models" / "person_detection_0203"))


def input_size(width: int, height: int, max_pixels: int = MAX_PIXELS, min_pixels: int = MIN_PIXELS) -> tuple[int, int]:
    """The network input ``(width, height)`` for a frame: the frame's own size with its aspect ratio, scaled
    down to at most ``max_pixels`` (or up to ``min_pixels``), in multiples of 32."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    pixels = min(max(width * height, min_pixels), max_pixels)
    scale = math.sqrt(pixels / (width * height))
    return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)


def _threads(num_threads: int | None) -> int:
    if num_threads:
        return int(num_threads)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_nms(model: Any, iou: float, max_boxes: int) -> None:
    """Set the IoU threshold and the box cap of the network's NonMaxSuppression (constants in the graph)."""
    from openvino import opset8

    found = [op for op in model.get_ordered_ops() if op.get_type_name() == "NonMaxSuppression"]
    if len(found) != 1:
        raise DetectorError(f"expected one NonMaxSuppression in the person model, found {len(found)}")
    (nms,) = found
    nms.input(2).replace_source_output(opset8.constant(np.array([max_boxes], np.int64)).output(0))
    nms.input(3).replace_source_output(opset8.constant(np.array([iou], np.float32)).output(0))


class PersonDetection0203:
    """The network under the OpenVINO runtime: one compiled model per input size, made on first use."""

    def __init__(
        self,
        num_threads: int | None = None,
        folder: Path | None = None,
        nms_iou: float = NMS_IOU,
        max_boxes: int = MAX_BOXES,
    ) -> None:
        self.folder = Path(folder) if folder is not None else model_dir()
        self.num_threads = num_threads
        self.nms_iou = nms_iou
        self.max_boxes = max_boxes
        self._core: Any = None
        self._model: Any = None
        self._compiled: dict[tuple[int, int], Any] = {}

    @property
    def xml(self) -> Path:
        return self.folder / f"{NAME}.xml"

    def load(self) -> None:
        """Read the network (a missing, corrupt or unreadable model is a :class:`DetectorError`)."""
        if self._model is not None:
            return
        for path in (self.xml, self.xml.with_suffix(".bin")):
            if not path.is_file():
                raise DetectorError(
                    f"the person model file {str(path)!r} is missing",
                    "reinstall crowdcount, or use a NanoDet preset (human.preset=nanodet)",
                )
        try:
            import openvino as ov
        except ImportError:
            raise DetectorError(
                "the default person model needs the OpenVINO runtime, which is not installed",
                "pip install openvino, or use a NanoDet preset (human.preset=nanodet)",
            ) from None
        try:
            self._core = ov.Core()
            model = self._core.read_model(str(self.xml))
            names = {o.get_any_name() for o in model.outputs}
        except Exception as exc:  # openvino raises RuntimeError subclasses with long native messages
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DetectorError(
                f"the person model {str(self.xml)!r} cannot be loaded: {first[:200]}",
                "reinstall crowdcount (the model files may be corrupt)",
            ) from None
        if "boxes" not in names or len(model.inputs) != 1:
            raise DetectorError(
                f"{str(self.xml)!r} is not a person-detection-0203 network (no 'boxes' output)",
                "reinstall crowdcount",
            )
        set_nms(model, self.nms_iou, self.max_boxes)
        self._model = model

    def _compiled_for(self, width: int, height: int) -> Any:
        key = (width, height)
        compiled = self._compiled.get(key)
        if compiled is None:
            model = self._model.clone()
            model.reshape({model.inputs[0].get_any_name(): [1, 3, height, width]})
            compiled = self._core.compile_model(
                model, "CPU", {"INFERENCE_NUM_THREADS": _threads(self.num_threads), "PERFORMANCE_HINT": "LATENCY"}
            )
            self._compiled[key] = compiled
        return compiled

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """``[K, 5]`` boxes (input pixels) and scores of one BGR ``uint8`` image already at the input size."""
        self.load()
        height, width = bgr.shape[:2]
        compiled = self._compiled_for(width, height)
        blob = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], dtype=np.float32)
        out = compiled(blob)[compiled.output("boxes")]
        return np.asarray(out, np.float32).reshape(-1, 5)


def read_model_card(folder: Path | None = None) -> dict[str, Any]:
    """The shipped ``model.json`` (provenance), or the built-in summary when it is missing."""
    path = (folder or model_dir()) / "model.json"
    try:
        return {**MODEL_INFO, **json.loads(path.read_text(encoding="utf-8"))}
    except (OSError, ValueError):
        return dict(MODEL_INFO)


def detect_bgr(
    model: PersonDetection0203, frames_bgr: Sequence[np.ndarray], max_pixels: int, score_floor: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run ``model`` on BGR frames (any size): per frame, xyxy boxes in frame pixels and scores >= ``score_floor``."""
    import cv2

    results = []
    for bgr in frames_bgr:
        height, width = bgr.shape[:2]
        in_w, in_h = input_size(width, height, max_pixels)
        interpolation = cv2.INTER_AREA if in_w < width else cv2.INTER_LINEAR
        resized = bgr if (in_w, in_h) == (width, height) else cv2.resize(bgr, (in_w, in_h), interpolation=interpolation)
        out = model(resized)
        keep = out[:, 4] >= score_floor
        scale = np.array([width / in_w, height / in_h, width / in_w, height / in_h], np.float32)
        boxes = out[keep, :4] * scale
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        results.append((boxes, out[keep, 4].copy()))
    return results
