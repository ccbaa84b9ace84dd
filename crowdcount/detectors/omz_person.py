"""Intel Open Model Zoo ``person-detection-0203`` (Apache-2.0), the default person model: ATSS with a
MobileNetV2 backbone and FPN, trained on people (not COCO's 80 classes) at 864x480.

It ships as TensorFlow models (a TFLite file and a SavedModel in ``crowdcount/models/person_detection_0203/``,
converted from Intel's OpenVINO IR by ``scripts/convert_person_detection.py``; provenance and licence in
``MODELS.md``), run by OpenVINO reading the TFLite file (fastest on CPUs), TensorFlow Lite or TensorFlow
(:mod:`crowdcount.detectors.person_tf`, which also holds the post-processing shared by all three). This module
holds what does not depend on the runtime: the model's card and the input size for a frame.

The input size comes from the frame (:func:`input_size`): its resolution upscaled 1.5 times, aspect kept,
rounded to multiples of 32 and capped at ``max_pixels`` (1920x1080 by default): a 480x360 frame runs at 720x544,
a 960x540 one at 1440x800, a 1920x1080 one at its own size. Chosen on development clips (docs/accuracy.md).
"""

from __future__ import annotations

import importlib.resources
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

NAME = "person-detection-0203"
#: The size the network was trained at.
TRAINED_SIZE = (864, 480)
#: Default cap on the network input, in pixels (1920x1080).
MAX_PIXELS = 1920 * 1080
#: Default upscaling of the frame (linear): people keep half as many pixels again (docs/accuracy.md).
UPSCALE = 1.5
#: Frames smaller than this are upscaled to about this many pixels.
MIN_PIXELS = 320 * 256

#: Provenance of the shipped weights (full model card: MODELS.md).
MODEL_INFO = {
    "name": NAME,
    "format": "tflite / saved_model",
    "source": "Intel Open Model Zoo person-detection-0203 (FP16 OpenVINO IR), converted to TensorFlow by "
    "scripts/convert_person_detection.py; shipped in crowdcount/models/person_detection_0203",
    "licence": "Apache-2.0",
    "classes": {"0": "person"},
}


def model_dir() -> Path:
    """The folder of the shipped person-detection-0203 files."""
    return Path(str(importlib.resources.files("crowdcount") / "models" / "person_detection_0203"))


def input_size(
    width: int, height: int, max_pixels: int = MAX_PIXELS, min_pixels: int = MIN_PIXELS, upscale: float = 1.0
) -> tuple[int, int]:
    """The network input ``(width, height)`` for a frame: the frame's size times ``upscale`` with its aspect
    ratio, scaled down to at most ``max_pixels`` (or up to ``min_pixels``), in multiples of 32."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    pixels = min(max(width * height * upscale * upscale, min_pixels), max_pixels)
    scale = math.sqrt(pixels / (width * height))
    return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)


def detect_one(
    model: Callable[[np.ndarray], np.ndarray],
    bgr: np.ndarray,
    size: tuple[int, int],
    score_floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` on a BGR frame resized to ``size`` (network ``(width, height)``): xyxy boxes in frame
    pixels and scores >= ``score_floor``."""
    import cv2

    height, width = bgr.shape[:2]
    in_w, in_h = size
    interpolation = cv2.INTER_AREA if in_w < width else cv2.INTER_LINEAR
    resized = bgr if (in_w, in_h) == (width, height) else cv2.resize(bgr, (in_w, in_h), interpolation=interpolation)
    out = model(np.ascontiguousarray(resized))
    keep = out[:, 4] >= score_floor
    scale = np.array([width / in_w, height / in_h, width / in_w, height / in_h], np.float32)
    boxes = out[keep, :4] * scale
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return boxes, out[keep, 4].copy()
