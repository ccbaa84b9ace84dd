"""Loading and running TensorFlow Object Detection API models (frozen graphs and SavedModels) under TF2.

Both export formats of the TF Object Detection API are supported:

* a TF1 frozen graph ``.pb`` (input ``image_tensor``, outputs ``detection_boxes``, ``detection_scores``,
  ``detection_classes``, ``num_detections``), run through ``tf.compat.v1.wrap_function`` — no TF1 session;
* a SavedModel directory (TF1 or TF2 export) through its ``serving_default`` signature.

Outputs follow the API: boxes normalised ``[ymin, xmin, ymax, xmax]``, 1-based class ids.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.detectors.base import Detections
from crowdcount.errors import DetectorError

logger = logging.getLogger(__name__)

_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


#: Native start-up lines TensorFlow writes straight to file descriptor 2 on machines without a GPU.
_NATIVE_NOISE = (
    "Created TensorFlow Lite XNNPACK delegate",
    "oneDNN custom operations",
    "absl::InitializeLog",
    "cudart_stub.cc",
    "cuda_platform.cc",
    "cuda_executor.cc",
    "cuInit",
    "Unable to register cu",
    "computation_placer.cc",
    "This TensorFlow binary is optimized",
    "rebuild TensorFlow with the appropriate compiler flags",
)


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Hold back what native code writes to stderr (fd 2) meanwhile; replay it without TensorFlow's known
    start-up chatter (oneDNN and no-GPU notices), which goes to this module's logger at debug level instead (seen
    with ``--log-level debug``), so users see only what matters. Python exceptions are untouched.

    Nested uses hold nothing more: the outermost one replays (fd 2 is the process's, and the debug records an inner
    one wrote would be held, and wrapped, again)."""
    global _holding
    with _holding_lock:
        outermost = _holding == 0
        _holding += 1
    try:
        if not outermost:
            yield
            return
        with _held_stderr():
            yield
    finally:
        with _holding_lock:
            _holding -= 1


#: How many quiet_native_logs blocks are open (in any thread: file descriptor 2 is the process's).
_holding = 0
_holding_lock = threading.Lock()


@contextmanager
def _held_stderr() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            chatter = [line for line in lines if any(noise in line for noise in _NATIVE_NOISE)]
            kept = "".join(line for line in lines if line not in chatter)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
            for line in chatter:
                logger.debug("native: %s", line.rstrip())


def import_tensorflow() -> Any:
    """Import TensorFlow quietly: its C++ start-up chatter is not for our users (it is logged at debug level; with
    debug logging on, TensorFlow's own INFO and WARNING lines are let through too)."""
    if not logger.isEnabledFor(logging.DEBUG):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with quiet_native_logs():
        import tensorflow as tf

    return tf


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (recorded in result files as model provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ObjectDetectionModel:
    """A TF Object Detection API model loaded from ``path`` (a ``.pb`` frozen graph or a SavedModel dir)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DetectorError(
                f"model path {str(self.path)!r} does not exist",
                "give a frozen graph .pb or a SavedModel directory of a TF Object Detection API model",
            )
        self._fn: Any = None
        self._input_key: str | None = None
        self._batchable = True
        self.format = "saved_model" if self.path.is_dir() else "frozen_graph"

    def load(self) -> None:
        """Load the graph; raises :class:`DetectorError` when it is not a detection model."""
        tf = self._tf = import_tensorflow()
        if self.format == "frozen_graph":
            self._load_frozen_graph(tf)
        else:
            self._load_saved_model(tf)
        logger.info("loaded %s model from %s", self.format, self.path)

    def _load_frozen_graph(self, tf: Any) -> None:
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(self.path.read_bytes())
        except Exception as exc:
            raise DetectorError(
                f"{str(self.path)!r} is not a TensorFlow frozen graph ({type(exc).__name__})",
                "give a frozen_inference_graph.pb or a SavedModel directory",
            ) from None
        names = {node.name for node in graph_def.node}
        missing = [n for n in ("image_tensor", *_OUTPUTS) if n not in names]
        if missing:
            raise DetectorError(
                f"{str(self.path)!r} is not a TF Object Detection API graph (missing {', '.join(missing)})",
                "export the model with the Object Detection API's exporter",
            )

        def _import() -> None:
            tf.compat.v1.import_graph_def(graph_def, name="")

        wrapped = tf.compat.v1.wrap_function(_import, [])
        graph = wrapped.graph
        self._fn = wrapped.prune(
            graph.get_tensor_by_name("image_tensor:0"),
            [graph.get_tensor_by_name(f"{name}:0") for name in _OUTPUTS],
        )
        self._input_key = None

    def _load_saved_model(self, tf: Any) -> None:
        try:
            model = tf.saved_model.load(str(self.path))
        except Exception as exc:
            raise DetectorError(
                f"{str(self.path)!r} is not a loadable SavedModel ({type(exc).__name__}: {str(exc)[:120]})",
                "give a SavedModel directory exported by the TF Object Detection API",
            ) from None
        signature = getattr(model, "signatures", {}).get("serving_default")
        if signature is None:
            raise DetectorError(f"SavedModel {str(self.path)!r} has no serving_default signature")
        outputs = set(signature.structured_outputs)
        missing = [n for n in _OUTPUTS[:3] if n not in outputs]
        _, kwargs = signature.structured_input_signature
        if missing or len(kwargs) != 1:
            raise DetectorError(
                f"SavedModel {str(self.path)!r} is not a TF Object Detection API model "
                f"(outputs {sorted(outputs)}, inputs {sorted(kwargs)})",
                "export the model with the Object Detection API's exporter",
            )
        ((self._input_key, spec),) = kwargs.items()
        if spec.dtype != tf.uint8:
            raise DetectorError(f"SavedModel {str(self.path)!r} takes {spec.dtype.name} input, expected uint8 images")
        self._batchable = spec.shape.rank is None or spec.shape[0] is None or spec.shape[0] > 1
        self._model = model  # keep the trackable objects alive
        self._fn = signature

    def __call__(self, frames: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Run on RGB uint8 frames of one size; per frame ``(boxes_yxyx_normalised, scores, classes)``."""
        if self._fn is None:
            self.load()
        if not self._batchable and len(frames) > 1:
            return [r for frame in frames for r in self([frame])]
        batch = self._tf.constant(np.stack(frames))
        if self._input_key is None:
            boxes, scores, classes, num = (t.numpy() for t in self._fn(batch))
        else:
            out = self._fn(**{self._input_key: batch})
            boxes, scores, classes = (out[k].numpy() for k in _OUTPUTS[:3])
            num = out["num_detections"].numpy() if "num_detections" in out else np.full(len(frames), scores.shape[1])
        results = []
        for i in range(len(frames)):
            n = int(num[i])
            results.append((boxes[i, :n], scores[i, :n], classes[i, :n].astype(np.int32)))
        return results


def to_detections(
    boxes_yxyx: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    width: int,
    height: int,
    keep_class: int | None,
) -> Detections:
    """Convert normalised ``[ymin, xmin, ymax, xmax]`` model output to pixel :class:`Detections`."""
    if keep_class is not None:
        mask = classes == keep_class
        boxes_yxyx, scores, classes = boxes_yxyx[mask], scores[mask], classes[mask]
    if not len(scores):
        return Detections.empty()
    boxes = np.clip(boxes_yxyx, 0.0, 1.0)[:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32)
    return Detections(boxes, np.clip(scores, 0.0, 1.0), classes)
