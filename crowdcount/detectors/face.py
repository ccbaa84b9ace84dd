"""The face detector: YuNet with MTCNN's O-Net as a second look by default, MTCNN (``model="mtcnn"``), or a TF
Object Detection API face model from a path. Every model gives boxes and scores; MTCNN and YuNet also the 5
keypoints (eyes, nose, mouth corners, in that order, the eye and mouth corner seen on the left first) that the
face embedders align with."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.base import Detections, Detector
from crowdcount.detectors.face_verify import VERIFIERS, ONetVerifier
from crowdcount.detectors.tf_models import ObjectDetectionModel, import_tensorflow, to_detections
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

#: The face models built in, by name.
MODELS = ("mtcnn", "yunet")
YUNET_FILE = "face_detection_yunet_2026may.onnx"
#: The default model.
DEFAULT_MODEL = "yunet"
#: The default ``min_detection_score`` of each model (``yunet+onet``: YuNet's score times O-Net's face probability).
DEFAULT_SCORES = {"mtcnn": 0.5, "yunet": 0.7, "yunet+onet": 0.5}
#: YuNet finds faces of ~10-300 px: frames larger than 1.5x this are searched again at this long side.
YUNET_COARSE = 320
#: Small frames (long side at most :data:`YUNET_FINE_BELOW` px) are searched again at this scale, for the faces of
#: 10-30 px that YuNet finds better twice as large (docs/faces.md: +0.06 AP50 on faces >= 20 px of the face-mask
#: photos, ~400 px wide); larger frames are not (the pass would cost 4x the full-size one).
YUNET_FINE = 2.0
YUNET_FINE_BELOW = 640
#: The upscaled pass keeps only the faces shorter than this in the frame (the full-size pass finds the larger
#: ones; kept, the upscaled pass's large boxes were mostly animals' faces).
YUNET_FINE_MAX_FACE = 64

MTCNN_INFO = {
    "name": "mtcnn",
    "format": "keras",
    "source": "PyPI mtcnn==1.0.0 (mtcnn/assets/weights/{p,r,o}net.lz4)",
    "licence": "MIT",
}


def yunet_dir() -> Path:
    """The shipped YuNet model folder."""
    return Path(__file__).resolve().parents[1] / "models" / "yunet"


def yunet_info(verify: str = "none") -> dict[str, Any]:
    """Where YuNet (and its verifier, if any) come from."""
    info = json.loads((yunet_dir() / "model.json").read_text(encoding="utf-8"))
    info = {k: info[k] for k in ("name", "format", "source", "licence")}
    if verify == "onet":
        onet = ONetVerifier.model_info()
        info = {
            "name": f"{info['name']}+{onet['name']}",
            "format": f"{info['format']}+{onet['format']}",
            "source": f"{info['source']}; verifier: {onet['source']}",
            "licence": info["licence"]
            if info["licence"] == onet["licence"]
            else f"{info['licence']}, {onet['licence']}",
        }
    return info


class FaceDetector(Detector):
    """Finds faces.

    Args:
        min_detection_score: keep faces scoring at least this (default: 0.5 for YuNet checked by O-Net, and for
            MTCNN, whose scores are nearly all above 0.8; 0.7 for YuNet alone, where its precision and recall on
            the face-mask photos equal MTCNN's; docs/faces.md).
        max_batch_size: frames per model call.
        model: ``yunet`` (default; OpenCV's YuNet, shipped as ONNX in ``crowdcount/models/yunet/`` and run by
            OpenCV's DNN module, CPU) or ``mtcnn`` (PyPI ``mtcnn``, TensorFlow; docs/faces.md compares them).
        model_path: a TF Object Detection API face model (frozen ``.pb`` or SavedModel), instead of ``model``.
        face_class_id: the class id of a face in that model's label map.
        min_face_size: MTCNN only: the smallest face searched for, in pixels.
        nms_threshold: YuNet only: the IoU above which overlapping faces are merged.
        upscale: YuNet only: search frames whose long side is at most 640 px again at twice their size for faces
            under 64 px, and merge by NMS on the final score (off by default: it finds more small faces in
            small photos, but costs about 5 times the face detector's time on such frames, which halves the
            default ``analyze``'s speed on 480x360 video; docs/faces.md).
        verify: YuNet only: ``onet`` (default) scores each face YuNet's score times the probability that MTCNN's
            O-Net gives its square crop of being a human face (YuNet alone scores animals' faces up to 0.88);
            ``none``: YuNet's own score.
    """

    category = "Face"
    name = "face"

    def __init__(
        self,
        min_detection_score: float | None = None,
        max_batch_size: int = 8,
        model_path: str | None = None,
        face_class_id: int = 1,
        min_face_size: int = 20,
        model: str = DEFAULT_MODEL,
        nms_threshold: float = 0.3,
        verify: str | None = None,
        upscale: bool | None = None,
    ) -> None:
        if not isinstance(model, str) or model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        if verify is None:
            verify = "onet" if model == "yunet" and not model_path else "none"
        if verify not in VERIFIERS:
            raise ValueError(f"verify must be one of {', '.join(VERIFIERS)}, got {verify!r}")
        if verify != "none" and (model != "yunet" or model_path):
            raise ValueError(f"verify={verify} applies to model=yunet only (MTCNN has O-Net as its last stage)")
        if min_detection_score is None:  # the model's own operating point (docs/faces.md)
            min_detection_score = DEFAULT_SCORES.get(model if verify == "none" else f"{model}+{verify}", 0.5)
        super().__init__(min_detection_score, max_batch_size)
        if isinstance(min_face_size, bool) or not isinstance(min_face_size, int) or min_face_size < 4:
            raise ValueError(f"min_face_size must be an integer >= 4, got {min_face_size!r}")
        if isinstance(nms_threshold, bool) or not isinstance(nms_threshold, (int, float)) or not 0 < nms_threshold < 1:
            raise ValueError(f"nms_threshold must be a number in (0, 1), got {nms_threshold!r}")
        if upscale is None:
            upscale = False
        if not isinstance(upscale, bool):
            raise ValueError(f"upscale must be true or false, got {upscale!r}")
        if upscale and (model != "yunet" or model_path):
            raise ValueError("upscale=true applies to model=yunet only")
        self.model = model
        self.upscale = upscale
        self.verify = verify
        self._verifier = ONetVerifier() if verify == "onet" else None
        self.nms_threshold = float(nms_threshold)
        self._yunet: Any = None
        #: one YuNet per input size: OpenCV re-plans the network whenever its input size changes, so passes of
        #: two sizes on one instance cost several times two passes
        self._yunet_by_size: dict[tuple[int, int], Any] = {}
        self._yunet_score = self.min_detection_score
        self._nms_on_yunet = False  # True: merge by YuNet's own score, as before (benchmarks/bench_faces_verify.py)
        self.model_path = model_path
        self.face_class_id = face_class_id
        self.min_face_size = min_face_size
        self._od_model = ObjectDetectionModel(model_path) if model_path else None
        self._mtcnn: Any = None

    def _load(self) -> None:
        if self._od_model is not None:
            self._od_model.load()
            return
        if self.model == "yunet":
            import cv2

            path = yunet_dir() / YUNET_FILE
            if not path.is_file():
                raise DetectorError(f"the YuNet model {path} is missing", "reinstall crowdcount")
            self._yunet = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), self.min_detection_score, self.nms_threshold, 5000
            )
            self._yunet_by_size = {(320, 320): self._yunet}
            self._yunet_score = self.min_detection_score
            if self._verifier is not None:
                self._verifier.load()
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
        if self._yunet is not None:
            return [self._detect_yunet(frame) for frame in frames]
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

    def _detect_yunet(self, frame: np.ndarray) -> Detections:
        """YuNet at full size (faces of ~10-300 px); again on a copy whose long side is :data:`YUNET_COARSE` px
        when the frame is larger (close-up faces, up to the whole frame); again at :data:`YUNET_FINE` times the
        size when the frame's long side is at most :data:`YUNET_FINE_BELOW` px (small faces, kept when shorter
        than :data:`YUNET_FINE_MAX_FACE` px); each face scored (by the verifier, if any), then merged by NMS on
        that score."""
        import cv2

        height, width = frame.shape[:2]
        if self.candidate_score != self._yunet_score:  # a tracker's lower score floor, or back
            self._yunet_score = self.candidate_score
            for yunet in self._yunet_by_size.values():
                yunet.setScoreThreshold(self._yunet_score)
        bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
        passes: list[tuple[np.ndarray, float, float]] = [(bgr, 1.0, np.inf)]  # image, scale, largest face kept
        longest = max(height, width)
        if longest > YUNET_COARSE * 1.5:
            scale = YUNET_COARSE / longest
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            passes.append((cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), scale, np.inf))
        fine = self.upscale and longest <= YUNET_FINE_BELOW
        if fine:
            size = (round(width * YUNET_FINE), round(height * YUNET_FINE))
            passes.append((cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR), YUNET_FINE, YUNET_FINE_MAX_FACE))
        found = []
        for image, scale, largest in passes:
            _, rows = self._yunet_for((image.shape[1], image.shape[0])).detect(image)
            if rows is not None and len(rows):
                rows = np.asarray(rows, np.float32).reshape(-1, 15).copy()
                rows[:, :14] /= scale
                found.append(rows[rows[:, 3] < largest])
        rows = np.concatenate(found) if found else np.zeros((0, 15), np.float32)
        boxes = np.concatenate([rows[:, 0:2], rows[:, 0:2] + rows[:, 2:4]], axis=1)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        rows, boxes = rows[nonempty], boxes[nonempty]
        if not len(rows):
            return Detections.empty()
        scores = np.clip(rows[:, 14], 0.0, 1.0)
        if self._verifier is not None:  # a second look: YuNet's score times O-Net's face probability
            scores = scores * self._verifier.face_probability(frame, boxes)
        if len(passes) > 1:  # the same face found at two scales: the one scored higher stays
            # by the final score where the 2x pass ran (chosen with it), else by YuNet's own (the final score
            # there named more animals' faces, docs/faces.md)
            key = scores if fine and not self._nms_on_yunet else rows[:, 14]
            kept = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), key.tolist(), 0.0, self.nms_threshold)
            keep = np.asarray(kept, np.int64).reshape(-1)
            rows, boxes, scores = rows[keep], boxes[keep], scores[keep]
        # YuNet: the eye seen on the left, the other eye, nose tip, the mouth corner seen on the left, the other
        return Detections(
            boxes,
            scores.astype(np.float32),
            np.ones(len(rows), np.int32),
            {"keypoints": rows[:, 4:14].reshape(-1, 5, 2)},
        )

    def _yunet_for(self, size: tuple[int, int]) -> Any:
        """The YuNet instance planned for input ``size`` (``(width, height)``); a few sizes are kept."""
        yunet = self._yunet_by_size.get(size)
        if yunet is None:
            import cv2

            if len(self._yunet_by_size) >= 8:  # another video size: start again
                self._yunet_by_size.clear()
            yunet = cv2.FaceDetectorYN.create(
                str(yunet_dir() / YUNET_FILE), "", size, self._yunet_score, self.nms_threshold, 5000
            )
            self._yunet_by_size[size] = yunet
        return yunet

    def arguments(self) -> dict[str, Any]:
        return {
            **super().arguments(),
            "model": self.model,
            "nms_threshold": self.nms_threshold,
            "verify": self.verify,
            "upscale": self.upscale,
            "model_path": self.model_path,
            "face_class_id": self.face_class_id,
            "min_face_size": self.min_face_size,
        }

    @classmethod
    def default_model_info(cls) -> dict[str, Any]:
        """The models loaded when no ``model_path`` is given: YuNet, checked by O-Net."""
        return yunet_info("onet")

    def model_info(self) -> dict[str, Any]:
        if self._od_model is None and self.model == "yunet":
            return yunet_info(self.verify)
        if self._od_model is None:
            return dict(MTCNN_INFO)
        return {
            "name": Path(str(self.model_path)).name,
            "format": self._od_model.format,
            "source": str(self.model_path),
        }
