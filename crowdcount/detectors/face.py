"""The face detector: CenterFace by default (MTCNN's O-Net as a second look on request), YuNet with O-Net
(``model="yunet"``, the default before), MTCNN (``model="mtcnn"``), or a TF Object Detection API face model from a
path. Every model gives boxes and scores; CenterFace, YuNet and MTCNN also the 5 keypoints (eyes, nose, mouth
corners, in that order, the eye and mouth corner seen on the left first) that the face embedders align with."""

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
MODELS = ("centerface", "mtcnn", "yunet")
#: The models that O-Net can check (one-stage detectors; MTCNN ends with O-Net itself).
VERIFIABLE = ("centerface", "yunet")
YUNET_FILE = "face_detection_yunet_2026may.onnx"
CENTERFACE_FILE = "centerface.onnx"
#: The default model.
DEFAULT_MODEL = "centerface"
#: The default ``min_detection_score`` of each model (``+onet``: the model's score times O-Net's face probability).
DEFAULT_SCORES = {"mtcnn": 0.5, "yunet": 0.7, "yunet+onet": 0.5, "centerface": 0.5, "centerface+onet": 0.5}
#: CenterFace's input sides are multiples of this (the frame is resized to the next one up).
CENTERFACE_STRIDE = 32
#: CenterFace finds faces of ~10-450 px: frames larger than 1.5x this are searched again at this long side, for
#: the faces at least :data:`CENTERFACE_COARSE_MIN_FACE` px tall or wide in the frame (smaller ones are the
#: full-size pass's: kept from the coarse pass, they were mostly animals' faces, seen smaller).
CENTERFACE_COARSE = 400
CENTERFACE_COARSE_MIN_FACE = 300
#: A face whose area lies this much inside a face at least :data:`FRAGMENT_AREA` times larger, found with a higher
#: score, is a fragment of it (CenterFace breaks faces larger than it finds whole into pieces).
FRAGMENT_INSIDE = 0.6
FRAGMENT_AREA = 2.0
#: CenterFace's output names: face-centre heatmap, log sizes, centre offsets, keypoints.
CENTERFACE_OUTPUTS = ("537", "538", "539", "540")
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


def shipped_dir(model: str) -> Path:
    """The folder of a face model shipped in the package (``yunet``, ``centerface``)."""
    return Path(__file__).resolve().parents[1] / "models" / model


def yunet_dir() -> Path:
    """The shipped YuNet model folder."""
    return shipped_dir("yunet")


def centerface_dir() -> Path:
    """The shipped CenterFace model folder."""
    return shipped_dir("centerface")


def shipped_model_info(folder: Path, verify: str = "none") -> dict[str, Any]:
    """Where the one-stage model shipped in ``folder`` (and its verifier, if any) come from."""
    info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
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


def _drop_fragments(boxes: np.ndarray, scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``keep`` (indices, by descending score) less the boxes lying mostly inside a larger kept box that scores
    higher (:data:`FRAGMENT_INSIDE`, :data:`FRAGMENT_AREA`)."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    for j in keep[np.argsort(-scores[keep], kind="stable")]:
        for i in kept:
            if areas[i] < FRAGMENT_AREA * areas[j]:
                continue
            w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            if w > 0 and h > 0 and w * h >= FRAGMENT_INSIDE * areas[j]:
                break
        else:
            kept.append(int(j))
    return np.array(kept, np.int64)


class FaceDetector(Detector):
    """Finds faces.

    Args:
        min_detection_score: keep faces scoring at least this (default: 0.5 for CenterFace, alone or checked by
            O-Net, for YuNet checked by O-Net, and for MTCNN, whose scores are nearly all above 0.8; 0.7 for YuNet
            alone, where its precision and recall on the face-mask photos equal MTCNN's; docs/faces.md).
        max_batch_size: frames per model call.
        model: ``centerface`` (default; CenterFace, shipped as ONNX in ``crowdcount/models/centerface/`` and run
            by OpenVINO on the CPU, at the frame's own size), ``yunet`` (OpenCV's YuNet, shipped as ONNX in
            ``crowdcount/models/yunet/`` and run by OpenCV's DNN module, CPU; the default before) or ``mtcnn``
            (PyPI ``mtcnn``, TensorFlow); docs/faces.md compares them.
        model_path: a TF Object Detection API face model (frozen ``.pb`` or SavedModel), instead of ``model``.
        face_class_id: the class id of a face in that model's label map.
        min_face_size: MTCNN only: the smallest face searched for, in pixels.
        nms_threshold: CenterFace and YuNet: the IoU above which overlapping faces are merged.
        upscale: YuNet only: search frames whose long side is at most 640 px again at twice their size for faces
            under 64 px, and merge by NMS on the final score (off by default: it finds more small faces in
            small photos, but costs about 5 times the face detector's time on such frames, which halves the
            default ``analyze``'s speed on 480x360 video; docs/faces.md).
        verify: CenterFace and YuNet: ``onet`` scores each face the model's score times the probability that
            MTCNN's O-Net gives its square crop of being a human face (the default for YuNet, which alone scores
            animals' faces up to 0.88); ``none``: the model's own score (the default for CenterFace, which finds
            more faces alone and names animals' faces less often than YuNet does; docs/faces.md).
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
            verify = "onet" if model == "yunet" and not model_path else "none"  # CenterFace: alone (docs/faces.md)
        if verify not in VERIFIERS:
            raise ValueError(f"verify must be one of {', '.join(VERIFIERS)}, got {verify!r}")
        if verify != "none" and (model not in VERIFIABLE or model_path):
            raise ValueError(
                f"verify={verify} applies to model=centerface or yunet only (MTCNN has O-Net as its last stage)"
            )
        if min_detection_score is None:  # the model's own operating point (docs/faces.md)
            min_detection_score = DEFAULT_SCORES.get(model if verify == "none" else f"{model}+{verify}", 0.5)
        super().__init__(min_detection_score, max_batch_size)
        if isinstance(min_face_size, bool) or not isinstance(min_face_size, int) or min_face_size < 4:
            raise ValueError(f"min_face_size must be an integer >= 4, got {min_face_size!r}")
        if isinstance(nms_threshold, bool) or not isinstance(nms_threshold, (int, float)) or not 0 < nms_threshold < 1:
            raise ValueError(f"nms_threshold must be a number in (0, 1), got {nms_threshold!r}")
        if isinstance(face_class_id, bool) or not isinstance(face_class_id, int):
            raise ValueError(f"face_class_id must be an integer, got {face_class_id!r}")
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
        self._centerface: Any = None  # the OpenVINO model, compiled once for any input size
        self.model_path = model_path
        self.face_class_id = face_class_id
        self.min_face_size = min_face_size
        self._od_model = ObjectDetectionModel(str(model_path)) if model_path else None
        self._mtcnn: Any = None

    def _load(self) -> None:
        if self._od_model is not None:
            self._od_model.load()
            return
        if self.model == "centerface":
            import openvino

            path = centerface_dir() / CENTERFACE_FILE
            if not path.is_file():
                raise DetectorError(f"the CenterFace model {path} is missing", "reinstall crowdcount")
            try:
                model = openvino.Core().read_model(str(path))
                # any input size, compiled once (photos of many sizes would each cost a compile otherwise); in
                # OpenVINO's default precision, as the person detector: bfloat16 on CPUs that have it, twice as
                # fast as float32 there, with the same AP50 (docs/faces.md)
                model.reshape({model.inputs[0].get_any_name(): openvino.PartialShape([1, 3, -1, -1])})
                self._centerface = openvino.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
            except RuntimeError as exc:
                message = f"the CenterFace model {path} cannot be read: {exc}"
                raise DetectorError(message, "reinstall crowdcount") from exc
            if self._verifier is not None:
                self._verifier.load()
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
        if self._centerface is not None:
            return [self._detect_centerface(frame) for frame in frames]
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

    def _detect_centerface(self, frame: np.ndarray) -> Detections:
        """CenterFace at the frame's own size, and again on a copy whose long side is :data:`CENTERFACE_COARSE`
        px when the frame is larger, for faces of at least :data:`CENTERFACE_COARSE_MIN_FACE` px (faces over
        ~450 px come out as fragments at full size); the passes' faces merged by NMS on CenterFace's score, and a
        face lying mostly inside one at least twice its area, found with a higher score, dropped (a fragment of a
        close-up face); then each scored by the verifier, if any."""
        import cv2

        height, width = frame.shape[:2]
        image = np.ascontiguousarray(frame)
        found = [self._centerface_pass(image)]
        longest = max(height, width)
        if longest > CENTERFACE_COARSE * 1.5:
            scale = CENTERFACE_COARSE / longest
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            boxes, scores, keypoints = self._centerface_pass(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            boxes, keypoints = boxes / scale, keypoints / scale
            large = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= CENTERFACE_COARSE_MIN_FACE
            found.append((boxes[large], scores[large], keypoints[large]))
        boxes = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        keypoints = np.concatenate([f[2] for f in found])
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, keypoints = boxes[nonempty], scores[nonempty], keypoints[nonempty]
        if not len(boxes):
            return Detections.empty()
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, self.nms_threshold), np.int64)
        keep = _drop_fragments(boxes, scores, keep.reshape(-1))
        boxes, scores, keypoints = boxes[keep], scores[keep], keypoints[keep]
        if self._verifier is not None:  # a second look: CenterFace's score times O-Net's face probability
            scores = scores * self._verifier.face_probability(frame, boxes)
        return Detections(
            boxes, scores.astype(np.float32), np.ones(len(boxes), np.int32), {"keypoints": keypoints.astype(np.float32)}
        )

    def _centerface_pass(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CenterFace on the RGB ``image`` resized to the next multiples of 32 (at most 31 px more a side): every
        heatmap cell at or above the candidate score is a face, its box (``(n, 4)`` xyxy in the image's pixels,
        not clipped), score and 5 keypoints (``(n, 5, 2)``) decoded from the other heads (stride 4)."""
        import cv2

        height, width = image.shape[:2]
        in_h, in_w = (-(-n // CENTERFACE_STRIDE) * CENTERFACE_STRIDE for n in (height, width))
        blob = cv2.dnn.blobFromImage(image, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False)
        compiled = self._centerface
        result = compiled(blob)
        heat, sizes, offsets, marks = (result[compiled.output(name)][0] for name in CENTERFACE_OUTPUTS)
        rows, cols = np.nonzero(heat[0] >= self.candidate_score)
        scores = heat[0, rows, cols].astype(np.float32)
        box_h, box_w = np.exp(sizes[0, rows, cols]) * 4, np.exp(sizes[1, rows, cols]) * 4
        x1 = (cols + offsets[1, rows, cols] + 0.5) * 4 - box_w / 2
        y1 = (rows + offsets[0, rows, cols] + 0.5) * 4 - box_h / 2
        sx, sy = width / in_w, height / in_h
        boxes = np.stack([x1 * sx, y1 * sy, (x1 + box_w) * sx, (y1 + box_h) * sy], axis=1).astype(np.float32)
        keypoints = np.stack(
            [(marks[1::2, rows, cols] * box_w + x1) * sx, (marks[0::2, rows, cols] * box_h + y1) * sy], axis=-1
        ).transpose(1, 0, 2)  # (n, 5, 2): the eye seen on the left, the other eye, nose, mouth corners (as YuNet)
        return boxes, scores, keypoints.astype(np.float32)

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
        """The models loaded when no ``model_path`` is given: CenterFace alone."""
        return shipped_model_info(centerface_dir())

    def model_info(self) -> dict[str, Any]:
        if self._od_model is None and self.model in VERIFIABLE:  # the shipped one-stage models
            return shipped_model_info(shipped_dir(self.model), self.verify)
        if self._od_model is None:
            return dict(MTCNN_INFO)
        return {
            "name": Path(str(self.model_path)).name,
            "format": self._od_model.format,
            "source": str(self.model_path),
        }
