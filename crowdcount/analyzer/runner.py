"""The one place that batches frames, runs the detectors and splits the results per frame.

:class:`FrameBatchRunner` serves every entry point: the frames of a video (:class:`~.analyzer.VideoAnalyzer`),
the latest frames of several cameras (:class:`crowdcount.live.Watcher`) and a fetched batch of a Kafka
partition (:class:`crowdcount.live.brokers.FrameConsumer`). Frames of one size are batched together (up to
``max_batch_size``); the processors then see every frame in the order given, so that each source's processors
see that source's frames in order, whatever the sizes. Boxes under a detector's threshold that a processor
asked for (``score_floors``) reach the processors marked, and never the results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from crowdcount.analyzer.processors import BELOW_THRESHOLD, FrameProcessor
from crowdcount.detectors import Detections, Detector
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)


class RunnableFrame(Protocol):
    """What the runner needs of a frame: its 1-based ``index``, ``timestamp_ms`` and ``rgb`` pixels; a frame
    that also has a ``scene`` (a live source's name) is detected apart from other scenes' frames, after
    :meth:`~crowdcount.detectors.Detector.use_scene` (detectors that learn from frames keep it per scene)."""

    @property
    def index(self) -> int: ...

    @property
    def timestamp_ms(self) -> float: ...

    @property
    def rgb(self) -> np.ndarray: ...


@dataclass
class FrameResult:
    """The detections of every detector in one analysed frame."""

    index: int
    timestamp_ms: float
    detections: dict[str, Detections]


class FrameBatchRunner:
    """Runs ``detectors`` over frames in batches, then ``processors`` on each frame in order.

    Args:
        detectors: built detectors, one per category.
        processors: the frame processors of every frame (unless :meth:`run` is given per-frame ones); their
            ``score_floors`` decide which weak boxes the detectors return.
        max_batch_size: frames per detector call at most (default: the largest of the detectors' own; each
            detector splits further to its own limit).
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        processors: Sequence[FrameProcessor] = (),
        max_batch_size: int | None = None,
    ) -> None:
        if not detectors:
            raise ConfigError("no detectors to run", "choose at least one, e.g. --detector human")
        categories = [d.category for d in detectors]
        duplicates = sorted({c for c in categories if categories.count(c) > 1})
        if duplicates:
            raise ConfigError(
                f"more than one detector reports category {', '.join(duplicates)}",
                "run each kind of detector once, e.g. -d human -d face (an alias such as person is human)",
            )
        if max_batch_size is not None and (isinstance(max_batch_size, bool) or int(max_batch_size) < 1):
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size!r}")
        check_processor_names(processors)
        self.detectors = list(detectors)
        self.processors = list(processors)
        self.max_batch_size = int(max_batch_size or max(d.max_batch_size for d in self.detectors))

    @property
    def categories(self) -> list[str]:
        return [d.category for d in self.detectors]

    def load(self) -> None:
        """Load every detector's model (otherwise done on the first batch)."""
        for detector in self.detectors:
            detector.load()

    def score_floor(self, detector: Detector) -> float | None:
        """The lowest score any processor asks ``detector``'s category for, when under its threshold."""
        floors = [p.score_floors[detector.category] for p in self.processors if detector.category in p.score_floors]
        floor = min(floors, default=None)
        return floor if floor is not None and floor < detector.min_detection_score else None

    def detect(self, frames: Sequence[RunnableFrame]) -> list[FrameResult]:
        """Every detector's detections of ``frames`` (in their order), weak boxes marked where asked for."""
        floors = [self.score_floor(detector) for detector in self.detectors]
        results: list[FrameResult | None] = [None] * len(frames)
        groups: dict[tuple[tuple[int, ...], Hashable], list[int]] = {}  # by frame shape and scene
        for i, frame in enumerate(frames):
            groups.setdefault((frame.rgb.shape, getattr(frame, "scene", None)), []).append(i)
        for (_, scene), positions in groups.items():
            for detector in self.detectors:
                detector.use_scene(scene)
            for start in range(0, len(positions), self.max_batch_size):
                chunk = positions[start : start + self.max_batch_size]
                images = [frames[i].rgb for i in chunk]
                per_detector = [d.detect(images, floor) for d, floor in zip(self.detectors, floors, strict=True)]
                for k, i in enumerate(chunk):
                    detections = {}
                    for detector, floor, dets in zip(self.detectors, floors, per_detector, strict=True):
                        detections[detector.category] = dets[k] if floor is None else mark_weak(dets[k], detector)
                    results[i] = FrameResult(frames[i].index, frames[i].timestamp_ms, detections)
        return [r for r in results if r is not None]

    def run(
        self,
        frames: Sequence[RunnableFrame],
        processors: Sequence[Sequence[FrameProcessor]] | None = None,
        after: Callable[[int, FrameResult], None] | None = None,
    ) -> list[FrameResult]:
        """Detect, then run the processors on each frame in the order given; the results, weak boxes removed.

        ``processors`` gives each frame its own processors (e.g. one pipeline per camera); default: the
        runner's for every frame. ``after(i, result)`` is called once frame ``i``'s processors ran, before the
        next frame's (to read running totals per frame).
        """
        if processors is not None and len(processors) != len(frames):
            raise ValueError(f"{len(processors)} processor lists for {len(frames)} frames")
        results = self.detect(frames)
        for i, (frame, result) in enumerate(zip(frames, results, strict=True)):
            for processor in self.processors if processors is None else processors[i]:
                processor.process(result, frame.rgb)
            for category in self.categories:
                # boxes under the threshold, and boxes a processor marked (e.g. scenery), never reach the result
                result.detections[category] = drop_weak(result.detections[category])
            if after is not None:
                after(i, result)
        return results


def check_processor_names(processors: Sequence[FrameProcessor]) -> None:
    """:class:`ConfigError` when two processors share a name (their result-file sections would clash)."""
    names = [p.name for p in processors]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ConfigError(f"more than one frame processor is named {', '.join(clashes)}")


def mark_weak(dets: Detections, detector: Detector) -> Detections:
    """``dets`` with ``data[BELOW_THRESHOLD]`` set where a box scores under the detector's threshold."""
    weak = dets.confidence < detector.min_detection_score
    return Detections(dets.xyxy, dets.confidence, dets.class_id, {**dets.data, BELOW_THRESHOLD: weak})


def drop_weak(dets: Detections) -> Detections:
    """``dets`` without the boxes marked under their threshold, and without the mark."""
    weak = dets.data.get(BELOW_THRESHOLD)
    if weak is None:
        return dets
    kept = dets[~np.asarray(weak, bool)]
    return Detections(
        kept.xyxy, kept.confidence, kept.class_id, {k: v for k, v in kept.data.items() if k != BELOW_THRESHOLD}
    )
