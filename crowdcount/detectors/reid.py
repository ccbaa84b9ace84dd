"""Person appearance embedder (re-identification): a person box -> an L2-normalised 256-d vector.

Two views of one person have a high cosine similarity; different people a lower one (look-alikes in dark
coats come close: compare several views, not one). Same interface as the face embedders
(:class:`crowdcount.detectors.embedders.FaceEmbedder`: ``embed(image, detections)``, ``describe()``), plus
:meth:`PersonEmbedder.embed_boxes` and :meth:`PersonEmbedder.embed_crops` for crops gathered from several
frames and run in one batch.

Models are shipped by name (:data:`PERSON_EMBEDDERS`): Intel Open Model Zoo ``person-reidentification-retail-0287``
(``person-reid-0287``, Apache-2.0), converted from its OpenVINO IR to TensorFlow by ``scripts/convert_reid.py``
and shipped in ``crowdcount/models/person_reid_0287/`` (TensorFlow Lite for CPUs, a SavedModel for GPUs). The
script also converts the stronger, ~3x costlier ``person-reidentification-retail-0277``; it was measured and not
shipped (docs/tracking.md, 2026-12-06). Vectors of two models are not comparable: result files name the model of
their vectors. A crop is the box, clipped to the frame and stretched to 128x256 (width x height), as the model
was trained. Models load lazily, never at import time.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.base import Detections
from crowdcount.detectors.embedders import FaceEmbedder, normalize
from crowdcount.detectors.tf_models import import_tensorflow
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

#: Crop size the model takes (height, width).
CROP_HEIGHT, CROP_WIDTH = 256, 128
#: Runtimes: TensorFlow Lite (CPUs), the SavedModel (GPUs, large batches), or ``auto`` (SavedModel on a GPU).
RUNTIMES = ("auto", "tflite", "saved_model")


@dataclass(frozen=True)
class PersonModel:
    """A shipped person ReID model: its folder under ``crowdcount/models``, the original's name and the cosine
    thresholds measured for it (docs/tracking.md)."""

    folder: str
    original: str
    match_threshold: float
    cluster_threshold: float


#: The shipped person ReID models by name.
PERSON_EMBEDDERS: dict[str, PersonModel] = {
    "person-reid-0287": PersonModel("person_reid_0287", "person-reidentification-retail-0287", 0.5, 0.6),
}
#: The tracker's and ``crowdcount find``'s model.
DEFAULT_PERSON_EMBEDDER = "person-reid-0287"


def person_model(name: str) -> PersonModel:
    """The shipped model called ``name`` (:class:`DetectorError` with the valid names otherwise)."""
    if name in PERSON_EMBEDDERS:
        return PERSON_EMBEDDERS[name]
    valid = sorted(PERSON_EMBEDDERS)
    close = difflib.get_close_matches(str(name), valid, n=1)
    raise DetectorError(
        f"unknown person embedder {name!r}",
        f"{f'did you mean {close[0]!r}? ' if close else ''}valid person embedders: {', '.join(valid)}",
    )


def reid_model_dir(name: str = DEFAULT_PERSON_EMBEDDER) -> Path:
    """The shipped folder of person ReID model ``name``."""
    return Path(__file__).resolve().parents[1] / "models" / person_model(name).folder


def crop_people(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """``(N, 256, 128, 3)`` uint8 crops of the boxes (pixels, clipped to the image, stretched to 128x256)."""
    import cv2

    height, width = image.shape[:2]
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    out = np.zeros((len(boxes), CROP_HEIGHT, CROP_WIDTH, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        left, top = int(np.clip(np.floor(x0), 0, width - 1)), int(np.clip(np.floor(y0), 0, height - 1))
        right, bottom = int(np.clip(np.ceil(x1), left + 1, width)), int(np.clip(np.ceil(y1), top + 1, height))
        out[i] = cv2.resize(image[top:bottom, left:right], (CROP_WIDTH, CROP_HEIGHT), interpolation=cv2.INTER_LINEAR)
    return out


class PersonEmbedder(FaceEmbedder):
    """Person ReID embedder (a shipped Open Model Zoo model, 256-d, cosine).

    ``match_threshold``: mean cosine similarity at or above which a query photo and a track are taken for one
    person by ``crowdcount find`` (docs/tracking.md); ``cluster_threshold``: the similarity above which the
    tracker may join two tracklets (it also needs their motion and timing to agree).

    Args:
        model: a name in :data:`PERSON_EMBEDDERS` (default ``person-reid-0287``).
        runtime: ``tflite`` (CPUs), ``saved_model`` or ``auto`` (the SavedModel when TensorFlow sees a GPU).
        batch_size: crops per model call.
        num_threads: TensorFlow Lite threads (default: all cores).
        folder: a model folder laid out as the shipped one (default: the shipped model).
    """

    dim = 256

    def __init__(
        self,
        runtime: str = "auto",
        batch_size: int = 16,
        num_threads: int | None = None,
        folder: str | Path | None = None,
        model: str = DEFAULT_PERSON_EMBEDDER,
    ) -> None:
        super().__init__()
        spec = person_model(model)
        self.name = model
        self.match_threshold = spec.match_threshold
        self.cluster_threshold = spec.cluster_threshold
        self._original = spec.original
        if runtime not in RUNTIMES:
            raise DetectorError(f"person embedder runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DetectorError(f"person embedder batch_size must be an integer >= 1, got {batch_size!r}")
        self.runtime = runtime
        self.batch_size = batch_size
        self.num_threads = num_threads or os.cpu_count() or 1
        self.folder = Path(folder) if folder is not None else reid_model_dir(model)
        self.info: dict[str, Any] = {}
        self._interpreter: Any = None
        self._batch = 0
        self._signature: Any = None
        self._tf: Any = None

    def _load(self) -> None:
        model_json = self.folder / "model.json"
        if not model_json.is_file():
            raise DetectorError(f"person embedder model folder {str(self.folder)!r} has no model.json")
        self.info = json.loads(model_json.read_text(encoding="utf-8"))
        tf = import_tensorflow()
        if self.runtime == "auto":
            self.runtime = "saved_model" if tf.config.list_physical_devices("GPU") else "tflite"
        if self.runtime == "tflite":
            path = self.folder / self.info["tflite"]["file"]
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                Interpreter = None
            if Interpreter is not None:
                self._interpreter = Interpreter(model_path=str(path), num_threads=self.num_threads)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                    self._interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=self.num_threads)
            self._input = self._interpreter.get_input_details()[0]["index"]
            self._resize(1)
        else:
            self._model = tf.saved_model.load(str(self.folder / "saved_model"))
            self._signature = self._model.signatures["serving_default"]
            self._tf = tf
        logger.info("loaded person embedder %s (%s) from %s", self.name, self.runtime, self.folder)

    def _resize(self, batch: int) -> None:
        self._interpreter.resize_tensor_input(self._input, [batch, CROP_HEIGHT, CROP_WIDTH, 3])
        self._interpreter.allocate_tensors()
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = batch

    def _call(self, crops: np.ndarray) -> np.ndarray:
        if self._signature is not None:
            return self._signature(images=self._tf.constant(crops))["embeddings"].numpy()
        if len(crops) != self._batch:
            self._resize(len(crops))
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(crops))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(N, 256)`` unit vectors of uint8 RGB ``(N, 256, 128, 3)`` crops (see :func:`crop_people`), batched."""
        crops = np.asarray(crops, np.uint8).reshape(-1, CROP_HEIGHT, CROP_WIDTH, 3)
        if not len(crops):
            return np.zeros((0, self.dim), np.float32)
        self.load()
        step = self.batch_size
        return normalize(np.concatenate([self._call(crops[i : i + step]) for i in range(0, len(crops), step)]))

    def embed_boxes(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """``(N, 256)`` unit vectors of the people in ``xyxy`` (pixels) of the RGB ``uint8`` ``image``."""
        return self.embed_crops(crop_people(image, xyxy))

    def _embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        return self.embed_boxes(image, faces.xyxy)

    def model_info(self) -> dict[str, Any]:
        return {
            "name": self._original,
            "format": self.runtime if self.runtime != "auto" else "tflite / saved_model",
            "source": "Intel Open Model Zoo (OpenVINO IR), converted by scripts/convert_reid.py",
            "licence": "Apache-2.0",
        }


def build_person_embedder(name: str = DEFAULT_PERSON_EMBEDDER, **kwargs: Any) -> PersonEmbedder:
    """The shipped person embedder ``name`` (``runtime``, ``batch_size``, ``num_threads``, ``folder`` as
    :class:`PersonEmbedder`)."""
    return PersonEmbedder(model=name, **kwargs)
