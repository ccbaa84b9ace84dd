"""The face detector: MTCNN by default, or a TF Object Detection API face model from a path."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.base import Detections, Detector
from crowdcount.detectors.tf_models import ObjectDetectionModel, import_tensorflow, to_detections

logger = logging.getLogger(__name__)

MTCNN_INFO = {
    "name": "mtcnn",
    "format": "keras",
    "source": "PyPI mtcnn==1.0.0 (mtcnn/assets/weights/{p,r,o}net.lz4)",
    "licence": "MIT",
}


class FaceDetector(Detector):
    """Finds faces.

    Args:
        min_detection_score: keep faces scoring at least this.
        max_batch_size: frames per model call.
        model_path: a TF Object Detection API face model (frozen ``.pb`` or SavedModel); default MTCNN.
        face_class_id: the class id of a face in that model's label map.
        min_face_size: MTCNN only: the smallest face searched for, in pixels.
    """

    category = "Face"
    name = "face"

    def __init__(
        self,
        min_detection_score: float = 0.5,
        max_batch_size: int = 8,
        model_path: str | None = None,
        face_class_id: int = 1,
        min_face_size: int = 20,
    ) -> None:
        super().__init__(min_detection_score, max_batch_size)
        if isinstance(min_face_size, bool) or not isinstance(min_face_size, int) or min_face_size < 4:
            raise ValueError(f"min_face_size must be an integer >= 4, got {min_face_size!r}")
        self.model_path = model_path
        self.face_class_id = face_class_id
        self.min_face_size = min_face_size
        self._od_model = ObjectDetectionModel(model_path) if model_path else None
        self._mtcnn: Any = None

    def _load(self) -> None:
        if self._od_model is not None:
            self._od_model.load()
            return
        tf = import_tensorflow()
        from mtcnn import MTCNN

        device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        self._mtcnn = MTCNN(device=device)

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        height, width = frames[0].shape[:2]
        if self._od_model is not None:
            return [
                to_detections(boxes, scores, classes, width, height, self.face_class_id)
                for boxes, scores, classes in self._od_model(frames)
            ]
        rows = self._mtcnn.detect_faces(
            list(frames),
            box_format="xyxy",
            output_type="numpy",
            min_face_size=self.min_face_size,
        )
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, 16)
        results = []
        for i in range(len(frames)):
            mine = rows[rows[:, 0] == i]
            if not len(mine):
                results.append(Detections.empty())
                continue
            boxes = mine[:, 1:5].copy()
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
            results.append(
                Detections(
                    boxes,
                    np.clip(mine[:, 5], 0.0, 1.0),
                    np.ones(len(mine), np.int32),
                    # MTCNN gives x1..x5 then y1..y5 (left eye, right eye, nose, mouth left, mouth right)
                    {"keypoints": np.stack([mine[:, 6:11], mine[:, 11:16]], axis=-1)},
                )
            )
        return results

    def arguments(self) -> dict[str, Any]:
        return {
            **super().arguments(),
            "model_path": self.model_path,
            "face_class_id": self.face_class_id,
            "min_face_size": self.min_face_size,
        }

    @classmethod
    def default_model_info(cls) -> dict[str, Any]:
        """The model loaded when no ``model_path`` is given."""
        return dict(MTCNN_INFO)

    def model_info(self) -> dict[str, Any]:
        if self._od_model is None:
            return self.default_model_info()
        return {
            "name": Path(str(self.model_path)).name,
            "format": self._od_model.format,
            "source": str(self.model_path),
        }
