"""A second look at each face a one-stage detector found: MTCNN's O-Net, a 48x48 face / not-a-face classifier.

YuNet, the default face detector, ranks faces well but scores animals' faces (dogs, cats, monkeys) up to 0.88.
MTCNN's last stage, O-Net, was trained to tell faces from the hard non-faces that its own earlier stages let
through; run on YuNet's box it gives the probability that the
crop is a human face. The face detector's score is YuNet's score times that probability (docs/faces.md
measures it on the face-mask photos and on photos of animals: animals named as faces in a few of 193 held-out
animal photos instead of 25)."""

from __future__ import annotations

import importlib.resources
import logging
from typing import Any

import numpy as np

from crowdcount.detectors.tf_models import import_tensorflow
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

#: The side of O-Net's input crop, in pixels.
ONET_SIZE = 48
#: The verifiers built in, by name (``none``: YuNet's own score).
VERIFIERS = ("onet", "none")

ONET_INFO = {
    "name": "onet",
    "format": "keras",
    "source": "PyPI mtcnn==1.0.0 (mtcnn/assets/weights/onet.lz4)",
    "licence": "MIT",
}


def square_crops(frame: np.ndarray, xyxy: np.ndarray, size: int = ONET_SIZE) -> np.ndarray:
    """``(n, size, size, 3)`` float32 crops of an RGB ``frame``, scaled to [-1, 1] as MTCNN's networks expect:
    each the square around a box's centre whose side is the box's longer side (outside the frame: grey)."""
    import cv2

    image = np.ascontiguousarray(frame, dtype=np.float32)
    out = np.empty((len(xyxy), size, size, 3), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, np.float64)):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        scale = size / max(x2 - x1, y2 - y1, 1.0)
        warp = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]], np.float32)
        flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out[i] = cv2.warpAffine(image, warp, (size, size), flags=flags, borderValue=(127.5, 127.5, 127.5))
    return (out - 127.5) / 128.0


class ONetVerifier:
    """MTCNN's O-Net (PyPI ``mtcnn``, MIT) as a face / not-a-face classifier of boxes found by another detector.

    Args:
        mirror: the probability is the mean of O-Net's on the crop and on its mirror image (one traced call on
            twice the crops); default ``False``, the crop alone: the mean's gain on the face-mask photos was
            within the noise, and it named more animals' faces on the held-out half (docs/faces.md).

    Nothing loads until the first call of :meth:`face_probability` (or :meth:`load`).
    """

    def __init__(self, mirror: bool = False) -> None:
        self.mirror = mirror
        self._model: Any = None
        self._predict: Any = None

    def load(self) -> None:
        """Build O-Net and load its weights from the ``mtcnn`` package."""
        if self._model is not None:
            return
        tf = import_tensorflow()
        try:
            from mtcnn.network.onet import ONet
            from mtcnn.utils.tensorflow import load_weights
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise DetectorError(f"the face verifier needs the mtcnn package ({exc})", "pip install mtcnn") from exc
        weights = importlib.resources.files("mtcnn.assets.weights") / "onet.lz4"
        model = ONet()
        model.build()
        model.set_weights(load_weights(str(weights)))
        self._model = model
        # one traced graph for any number of crops: 2-5x faster than calling the Keras model eagerly
        self._predict = tf.function(
            lambda crops: model(crops, training=False)[2],
            input_signature=[tf.TensorSpec([None, ONET_SIZE, ONET_SIZE, 3], tf.float32)],
        )

    def face_probability(self, frame: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """The probability that each box of an RGB ``frame`` (``(n, 4)`` xyxy pixels) holds a human face."""
        if not len(xyxy):
            return np.zeros(0, np.float32)
        self.load()
        crops = square_crops(frame, xyxy)
        if not self.mirror:
            return np.asarray(self._predict(crops), np.float32)[:, 1]
        both = np.asarray(self._predict(np.concatenate([crops, crops[:, :, ::-1]])), np.float32)[:, 1]
        return (both[: len(crops)] + both[len(crops) :]) / 2

    @staticmethod
    def model_info() -> dict[str, Any]:
        """Where O-Net comes from."""
        return dict(ONET_INFO)
