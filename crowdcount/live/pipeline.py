"""Per-source frame processors for the live paths: tracking, line and zone counting, annotation.

A live run reads several sources at once, and each needs its own tracker and counters: :class:`LivePipelines`
builds one set of processors per source (from one factory, :func:`pipeline_factory`: the stages of the pipeline
every entry point builds), starts it on the source's first frame (its size fixes the lines and zones in pixels),
and reports the totals since start that every record carries::

    {"lines": {"door": {"in": 4, "out": 2}}, "zones": {"queue": {"occupancy": 3, "visitors": 11}},
     "unique_people": 17}

Time for the tracker comes from the frames: a file's frame index over its frame rate (so a file watched without
``--realtime`` is tracked exactly as ``crowdcount analyze`` tracks it), the capture clock for streams and
webcams, whose analysed frames arrive at a variable interval (dropped frames are simply a longer gap).
A source whose frame size changes (a reconnect to another resolution) gets a fresh pipeline; its totals carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from crowdcount.analyzer.counting import CountingProcessor
from crowdcount.analyzer.pipeline import Pipeline
from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.analyzer.video import VideoInfo
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Builds the processors of one source (called with the source's id).
ProcessorFactory = Callable[[str], Sequence[FrameProcessor]]


@dataclass(frozen=True)
class LiveFrame:
    """A frame as the :class:`~crowdcount.analyzer.runner.FrameBatchRunner` takes it."""

    index: int
    timestamp_ms: float
    rgb: np.ndarray
    #: the source's name: detectors keep what they learn from frames per source
    scene: str | None = None


@dataclass
class _Pipeline:
    processors: list[FrameProcessor]
    size: tuple[int, int]
    #: totals of the pipelines this one replaced (after a frame size change)
    base: dict[str, Any] = field(default_factory=dict)

    @property
    def tracking(self) -> TrackingProcessor | None:
        return next((p for p in self.processors if isinstance(p, TrackingProcessor)), None)

    @property
    def counting(self) -> CountingProcessor | None:
        return next((p for p in self.processors if isinstance(p, CountingProcessor)), None)

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lines": {}, "zones": {}}
        counting = self.counting
        if counting is not None:
            now = counting.totals()
            out["lines"] = {
                name: {d: n + self.base.get("lines", {}).get(name, {}).get(d, 0) for d, n in counts.items()}
                for name, counts in now["lines"].items()
            }
            out["zones"] = {
                name: {
                    "occupancy": zone["occupancy"],
                    "visitors": zone["visitors"] + self.base.get("zones", {}).get(name, {}).get("visitors", 0),
                }
                for name, zone in now["zones"].items()
            }
        tracking = self.tracking
        if tracking is not None:
            out["unique_people"] = tracking.unique_people() + self.base.get("unique_people", 0)
        return out


class LivePipelines:
    """One set of processors per source (see the module docstring).

    Args:
        factory: builds a source's processors; ``None``: no processors (records carry only the detections).
        fps: the frame rate of a file source by its id (0 or absent: a stream, timed by its capture clock).
    """

    def __init__(self, factory: ProcessorFactory | None, fps: dict[str, float] | None = None) -> None:
        self.factory = factory
        self.fps = dict(fps or {})
        #: processors of no source, for the runner's score floors (which weak boxes the detectors return)
        self.template: list[FrameProcessor] = list(factory("")) if factory is not None else []
        #: the per-box fields the processors add (``track_ids``, face ``identities``...), as in result files
        self.frame_fields: dict[str, str] = {}
        for processor in self.template:
            self.frame_fields.update(processor.frame_fields)
        self._pipelines: dict[str, _Pipeline] = {}
        self._clock: dict[str, tuple[float, float]] = {}  # source -> (first capture time, last timestamp_ms)
        self._positions: dict[str, tuple[float, float | None]] = {}  # source -> (offset, last position_ms)
        self._last_step: dict[str, float] = {}  # source -> the timestamp_ms before the last one
        self._indices: dict[str, tuple[int, int | None]] = {}  # file source -> (frames before a restart, last index)

    @property
    def enabled(self) -> bool:
        return self.factory is not None

    def frame(
        self, source: str, index: int, captured_s: float, rgb: np.ndarray, position_ms: float | None = None
    ) -> LiveFrame:
        """The runner's frame for ``source``'s frame ``index`` captured at ``captured_s`` (any clock in seconds,
        the same for all of this source's frames), or at ``position_ms`` in a file (a file played again from its
        start carries on after its end); timestamps never go back."""
        fps = self.fps.get(source, 0.0)
        first, last = self._clock.get(source, (captured_s, -np.inf))
        if fps > 0:
            skipped, last_index = self._indices.get(source, (0, None))
            if last_index is not None and index <= last_index:  # the file started again: its frames carry on
                skipped += last_index + 1 - index
            self._indices[source] = (skipped, index)
            timestamp = (index - 1 + skipped) * 1000.0 / fps
        elif position_ms is not None:
            offset, previous = self._positions.get(source, (0.0, None))
            if previous is not None and position_ms < previous:  # the file started again
                offset = last + (last - self._last_step.get(source, last)) - position_ms
            self._positions[source] = (offset, position_ms)
            timestamp = offset + position_ms
        else:
            timestamp = (captured_s - first) * 1000.0
        timestamp = max(timestamp, last)
        if np.isfinite(last):
            self._last_step[source] = last
        self._clock[source] = (first, timestamp)
        return LiveFrame(index, timestamp, rgb, source)

    def processors(self, source: str, size: tuple[int, int]) -> list[FrameProcessor]:
        """``source``'s processors, started for a frame of ``size`` (width, height) when they were not yet."""
        if self.factory is None:
            return []
        pipeline = self._pipelines.get(source)
        if pipeline is not None and pipeline.size == size:
            return pipeline.processors
        base: dict[str, Any] = {}
        if pipeline is not None:
            logger.warning("source %s: frame size changed to %dx%d, tracking starts again", source, *size)
            base = pipeline.totals()
            self._close(pipeline)
        pipeline = _Pipeline(list(self.factory(source)), size, base)
        width, height = size
        info = VideoInfo(source, width, height, self.fps.get(source, 0.0), 0, "", 0)
        for processor in pipeline.processors:
            processor.live = True
            processor.start(info, 1.0)
        self._pipelines[source] = pipeline
        return pipeline.processors

    def fitting(
        self, frames: Sequence[T], source: Callable[[T], str], size: Callable[[T], tuple[int, int]]
    ) -> tuple[list[T], list[list[FrameProcessor]], dict[str, ConfigError]]:
        """The ``frames`` whose source's processors fit their size, those processors (one list a frame), and the
        error of each source whose own lines or zones lie outside its frames (its frames left out)."""
        kept: list[T] = []
        processors: list[list[FrameProcessor]] = []
        unfit: dict[str, ConfigError] = {}
        for frame in frames:
            try:
                processors.append(self.processors(source(frame), size(frame)))
            except ConfigError as exc:
                unfit.setdefault(source(frame), exc)
                continue
            kept.append(frame)
        return kept, processors, unfit

    def totals(self, source: str) -> dict[str, Any]:
        """``lines``, ``zones`` (and ``unique_people`` when tracking) of ``source`` since start; ``{}`` without
        processors."""
        if self.factory is None:
            return {}
        pipeline = self._pipelines.get(source)
        if pipeline is None:  # no frame yet: the shape of the totals, all zero
            pipeline = _Pipeline(self.template, (0, 0))
            counting = pipeline.counting
            own = self.factory.geometry.get(source) if isinstance(self.factory, SourceProcessors) else None
            lines, zones = own if own is not None else (counting.lines, counting.zones) if counting else ((), ())
            out: dict[str, Any] = {
                "lines": {line.name: {"in": 0, "out": 0} for line in lines},
                "zones": {zone.name: {"occupancy": 0, "visitors": 0} for zone in zones},
            }
            if pipeline.tracking is not None:
                out["unique_people"] = 0
            return out
        return pipeline.totals()

    def geometry(self, source: str) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
        """``source``'s counting lines and zones in pixels of its current frame size (for drawing); empty before
        its first frame or without counting."""
        pipeline = self._pipelines.get(source)
        counting = pipeline.counting if pipeline is not None else None
        return counting.pixel_geometry() if counting is not None else ([], [])

    def close(self) -> None:
        """Close every source's processors (an annotated video is finished)."""
        for pipeline in self._pipelines.values():
            self._close(pipeline)

    @staticmethod
    def _close(pipeline: _Pipeline) -> None:
        for processor in pipeline.processors:
            try:
                processor.close()
            except Exception:  # one failing close must not stop the others
                logger.exception("frame processor %s failed to close", processor.name)


class SourceProcessors:
    """A :data:`ProcessorFactory`: the stages of a pipeline built again for each source, with the sources' own
    lines and zones (``geometry``, a source id -> its lines and zones), which :class:`LivePipelines` also reads to
    report a source's totals before its first frame."""

    def __init__(
        self,
        pipeline: Pipeline,
        annotate: Callable[[str], str | Path | None] | None = None,
        geometry: Mapping[str, tuple[Sequence[Any], Sequence[Any]]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.annotate = annotate
        self.geometry = dict(geometry or {})

    def __call__(self, source: str) -> Sequence[FrameProcessor]:
        lines, zones = self.geometry.get(source, (None, None))
        annotate = self.annotate
        return self.pipeline.fresh((lambda info: annotate(info.path)) if annotate is not None else None, lines, zones)


def pipeline_factory(
    pipeline: Pipeline,
    annotate: Callable[[str], str | Path | None] | None = None,
    geometry: Mapping[str, tuple[Sequence[Any], Sequence[Any]]] | None = None,
) -> ProcessorFactory | None:
    """The factory of one source's processors: the stages of ``pipeline`` (:func:`crowdcount.analyzer.pipeline.
    build_pipeline`, the assembly every entry point uses) built again for each source, with ``annotate`` (a
    source id -> the annotated video to write, or ``None``) and ``geometry`` (a source id -> its own lines and
    zones, from a cameras file). ``None`` when the pipeline has no processors."""
    if not pipeline.processors:
        return None
    return SourceProcessors(pipeline, annotate, geometry)
