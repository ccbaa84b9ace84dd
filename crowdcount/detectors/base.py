"""The detector contract: what every detector takes (RGB frames) and returns (:class:`Detections`)."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """Detections in one frame, as numpy arrays (validated on creation).

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes in pixels of the frame, ``[x_min, y_min, x_max, y_max]``.
        confidence: ``(N,)`` float32 scores in ``[0, 1]``.
        class_id: ``(N,)`` int32 class ids of the model that produced them.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = (
            np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
            if np.size(self.xyxy)
            else np.zeros((0, 4), np.float32)
        )
        confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        class_id = np.asarray(self.class_id, dtype=np.int32).reshape(-1)
        n = len(xyxy)
        if len(confidence) != n or len(class_id) != n:
            raise ValueError(
                f"Detections arrays disagree in length: xyxy {n}, confidence {len(confidence)}, "
                f"class_id {len(class_id)}"
            )
        if n and not np.all(np.isfinite(xyxy)):
            raise ValueError("Detections boxes must be finite")
        if n and np.any((xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])):
            raise ValueError("Detections boxes must have x_max >= x_min and y_max >= y_min")
        if n and (np.any(confidence < 0) or np.any(confidence > 1) or not np.all(np.isfinite(confidence))):
            raise ValueError("Detections confidences must lie in [0, 1]")
        for key, value in self.data.items():
            if len(value) != n:
                raise ValueError(f"Detections data[{key!r}] has {len(value)} rows, expected {n}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id)

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select detections with a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            {k: v[index] for k, v in self.data.items()},
        )

    def normalized_yxyx(self, width: int, height: int) -> np.ndarray:
        """Boxes as ``[y_min, x_min, y_max, x_max]`` divided by the frame size (the result-file format)."""
        if not len(self):
            return np.zeros((0, 4), np.float32)
        scale = np.array([height, width, height, width], np.float32)
        return np.clip(self.xyxy[:, [1, 0, 3, 2]] / scale, 0.0, 1.0)


class Detector(ABC):
    """A detector of one category of things (``Human``, ``Face``) in RGB frames.

    Subclasses implement :meth:`_detect` on one batch of frames of identical size; :meth:`detect` splits
    any number of frames into batches of at most ``max_batch_size`` and filters by ``min_detection_score``.
    Models load lazily on the first call (or :meth:`load`), never at import time.
    """

    #: The result-file key of what this detector finds.
    category: ClassVar[str] = ""
    #: The registry name.
    name: ClassVar[str] = ""

    def __init__(self, min_detection_score: float = 0.5, max_batch_size: int = 8) -> None:
        if not isinstance(min_detection_score, (int, float)) or not 0.0 <= float(min_detection_score) <= 1.0:
            raise ValueError(f"min_detection_score must be a number in [0, 1], got {min_detection_score!r}")
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size!r}")
        self.min_detection_score = float(min_detection_score)
        self.max_batch_size = max_batch_size
        self._loaded = False
        self._score_floor: float | None = None

    def load(self) -> None:
        """Load the model now (it is otherwise loaded on the first :meth:`detect`)."""
        if not self._loaded:
            from crowdcount.detectors.tf_models import quiet_native_logs

            with quiet_native_logs():
                self._load()
            self._loaded = True

    @property
    def candidate_score(self) -> float:
        """The lowest score :meth:`_detect` must keep: ``min_detection_score``, or the lower ``score_floor`` of
        the :meth:`detect` call in progress."""
        floor = self._score_floor
        return self.min_detection_score if floor is None else min(floor, self.min_detection_score)

    def detect(self, frames: Sequence[np.ndarray], score_floor: float | None = None) -> list[Detections]:
        """Detect in RGB ``uint8`` frames of shape ``(H, W, 3)``; one :class:`Detections` per frame.

        ``score_floor`` keeps boxes down to that score instead of ``min_detection_score`` (when lower): weak
        boxes for a tracker, which uses them to follow people through occlusion. The caller filters them.
        """
        self.load()
        results: list[Detections] = []
        self._score_floor = score_floor
        try:
            threshold = self.candidate_score
            for start in range(0, len(frames), self.max_batch_size):
                batch = frames[start : start + self.max_batch_size]
                for dets in self._detect(batch):
                    results.append(dets[dets.confidence >= threshold])
        finally:
            self._score_floor = None
        return results

    def reset(self) -> None:
        """Forget what was learnt from earlier frames (a new video starts); most detectors keep nothing."""
        return None

    def use_scene(self, scene: Hashable | None) -> None:
        """The frames of the next calls come from ``scene`` (a live source's name; None: a video, or the only
        source): a detector that learns from earlier frames (the human detector's zoom) keeps what it learnt
        per scene, so that cameras sharing one detector do not mix it. Most detectors keep nothing."""
        return None

    @abstractmethod
    def _load(self) -> None:
        """Load the model."""

    @abstractmethod
    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detect in one batch of at most ``max_batch_size`` frames."""

    def arguments(self) -> dict[str, Any]:
        """The arguments this detector was built with (recorded in result files)."""
        return {"min_detection_score": self.min_detection_score, "max_batch_size": self.max_batch_size}

    @classmethod
    def default_model_info(cls) -> dict[str, Any]:
        """The model loaded when no model path is given."""
        return {}

    @abstractmethod
    def model_info(self) -> dict[str, Any]:
        """Provenance of the model: its name, where its weights come from, their licence."""

    def describe(self) -> dict[str, Any]:
        """Everything a result file records about this detector."""
        return {
            "name": self.name,
            "category": self.category,
            "arguments": self.arguments(),
            "model": self.model_info(),
        }


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` ``(N, 4)`` with every box of ``b`` ``(M, 4)`` (xyxy)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
