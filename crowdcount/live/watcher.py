"""The Watcher: runs the configured detectors over the latest frames of several sources, in one thread.

Each turn takes the latest untaken frame of every source (a live source may have replaced older ones
meanwhile: those are its dropped frames), runs every detector on them (frames of one size in one batch),
and hands one record per frame (or per interval) to the sinks. A source that fails or stalls reconnects
on its own thread; the others go on. Only a detector failure stops the watcher (it is a bug or a model
that cannot run, not a stream problem).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from crowdcount.analyzer.runner import FrameBatchRunner
from crowdcount.analyzer.video import usable_fps
from crowdcount.detectors import Detector
from crowdcount.errors import ConfigError, CrowdcountError
from crowdcount.live.metrics import LiveMetrics
from crowdcount.live.outputs import IntervalAggregator, Sink, frame_record
from crowdcount.live.pipeline import LivePipelines, ProcessorFactory
from crowdcount.live.sources import ENDED, FAILED, STREAMING, CapturedFrame, RateMeter, Source

logger = logging.getLogger(__name__)


class FrameObserver(Protocol):
    """Told of every analysed frame: the captured frame, its detections (weak boxes removed, track ids in
    ``data``) and the source's ``lines`` / ``zones`` / ``unique_people`` totals since start."""

    def observe(self, frame: CapturedFrame, detections: dict[str, Any], totals: dict[str, Any]) -> None: ...


@dataclass
class _SourceStats:
    analyzed: int = 0
    people_now: dict[str, int] = field(default_factory=dict)
    people_max: dict[str, int] = field(default_factory=dict)
    latency_s: float | None = None
    meter: RateMeter = field(default_factory=RateMeter)
    counting: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceStatus:
    """One source's row in the live table (and in ``--json`` summaries)."""

    source: str
    target: str
    mode: str
    status: str
    decode_fps: float
    inference_fps: float
    people_now: dict[str, int]
    people_max: dict[str, int]
    frames_decoded: int
    frames_analyzed: int
    frames_dropped: int
    reconnects: int
    size: tuple[int, int] | None
    latency_ms: float | None
    last_error: str
    #: ``lines``, ``zones`` and ``unique_people`` since start (empty without processors)
    counting: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size"] = list(self.size) if self.size else None
        return out


class Watcher:
    """Counts people in live sources.

    Args:
        detectors: built detectors (:func:`crowdcount.config.build_detectors`), one per category.
        sources: the :class:`Source` s to read (started by :meth:`start`).
        sinks: where records go (:mod:`crowdcount.live.outputs`, :mod:`crowdcount.live.brokers`).
        every: seconds per aggregated record; ``None``: one record per analysed frame.
        metrics: Prometheus metrics to update (:class:`LiveMetrics`), if any.
        boxes: per-frame records carry the boxes and scores (else only the counts).
        processors: builds one source's frame processors (tracking, lines, zones, annotation;
            :func:`crowdcount.live.pipeline.pipeline_factory`), called once per source; records then carry
            ``lines``, ``zones`` and ``unique_people`` (see :mod:`crowdcount.live.pipeline`).
        observers: told of every analysed frame (:class:`FrameObserver`, e.g. the web dashboard's hub), per frame
            also with ``every``; called on the inference thread, so they must be quick.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        sources: Sequence[Source],
        sinks: Sequence[Sink] = (),
        every: float | None = None,
        metrics: LiveMetrics | None = None,
        boxes: bool = True,
        processors: ProcessorFactory | None = None,
        observers: Sequence[FrameObserver] = (),
    ) -> None:
        if not detectors:
            raise ConfigError("no detectors to run", "choose at least one, e.g. --detector human")
        if not sources:
            raise ConfigError("no sources to watch", "give at least one SOURCE")
        categories = [d.category for d in detectors]
        if len(set(categories)) != len(categories):
            raise ConfigError("more than one detector reports the same category")
        self.pipelines = LivePipelines(processors, {s.id: _file_fps(s) for s in sources})
        self.runner = FrameBatchRunner(detectors, self.pipelines.template)
        self.detectors = self.runner.detectors
        self.categories = categories
        self.sources = list(sources)
        self.sinks = list(sinks)
        self.observers = list(observers)
        self.metrics = metrics
        self.boxes = boxes
        self.every = every
        self._aggregator = IntervalAggregator(every, [s.id for s in self.sources], categories) if every else None
        self._stats = {s.id: _SourceStats() for s in self.sources}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crowdcount-watcher", daemon=True)
        self._last_sync = 0.0
        self.sink_errors = 0
        self.error: BaseException | None = None
        self._unfit: dict[str, ConfigError] = {}  # the sources failed as their settings did not fit their frames
        for source in self.sources:
            source.notify = self._wake.set

    # -- life cycle -----------------------------------------------------------------------------------
    def load(self) -> None:
        """Load every detector's model (before any source is opened)."""
        self.runner.load()

    def start(self) -> Watcher:
        """Load the models, start the sources and the inference thread."""
        self.load()
        if self._aggregator is not None:
            self._aggregator.reset()
        for source in self.sources:
            source.start()
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every source has finished (or the watcher failed); True when it has."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stop(self) -> None:
        """Stop the sources and the inference thread, emit the last interval records."""
        self._stop.set()
        self._wake.set()
        for source in self.sources:
            source.stop(timeout=2.0)
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._sync_metrics(force=True)
        if self._aggregator is not None:
            self._emit_intervals(force=True)
        self.pipelines.close()

    def run(self, duration: float | None = None) -> list[SourceStatus]:
        """Start, watch until every source finished or ``duration`` seconds passed, stop; the final status.
        Raises what a detector raised."""
        self.start()
        try:
            self.wait(duration)
        finally:
            self.stop()
        if self.error is not None:
            raise self.error
        return self.snapshot()

    # -- the inference loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                frames = [f for f in (s.take() for s in self.sources) if f is not None]
                if frames:
                    self._analyse(frames)
                elif all(s.finished for s in self.sources):
                    break
                else:
                    self._wake.wait(0.1)
                self._sync_metrics()
                if self._aggregator is not None and self._aggregator.due():
                    self._emit_intervals()
        except BaseException as exc:  # a detector (or a line outside a source's frame) failed: handed to the caller
            log = logger.debug if isinstance(exc, CrowdcountError) else logger.error  # the caller reports those
            log("watcher stopped: %s: %s", type(exc).__name__, exc)
            self.error = exc
        finally:
            self._done.set()

    def _analyse(self, frames: list[CapturedFrame]) -> None:
        frames, processors, unfit = self.pipelines.fitting(frames, lambda f: f.source, lambda f: f.size)
        for source, exc in unfit.items():  # its lines or zones do not fit its frames: this camera fails, not all
            self._give_up(source, exc)
        if not frames:
            return
        batch = [self.pipelines.frame(f.source, f.index, f.captured_mono, f.rgb) for f in frames]
        results = self.runner.run(batch, processors)
        done = time.monotonic()
        for frame, result in zip(frames, results, strict=True):
            self._record(frame, result.detections, done - frame.captured_mono)

    def _give_up(self, source_id: str, exc: ConfigError) -> None:
        """Fail the source whose settings do not fit its frames; when every source has failed so, the watcher
        stops with the first such error (a configuration error, as for one camera)."""
        if source_id in self._unfit:  # a frame its reader had taken before the source was given up
            return
        source = next(s for s in self.sources if s.id == source_id)
        source.fail(str(exc))
        self._unfit[source_id] = exc
        if len(self._unfit) == len(self.sources):
            raise next(iter(self._unfit.values()))  # said by the caller, as for one camera
        logger.error("source %s failed: %s", source_id, exc)

    def _record(self, frame: CapturedFrame, detections: dict[str, Any], latency_s: float) -> None:
        stats = self._stats[frame.source]
        stats.analyzed += 1
        stats.meter.add()
        stats.latency_s = latency_s
        counts = {category: len(d) for category, d in detections.items()}
        stats.people_now = counts
        for category, n in counts.items():
            stats.people_max[category] = max(stats.people_max.get(category, 0), n)
        totals = self.pipelines.totals(frame.source)
        stats.counting = totals
        if self.metrics is not None:
            self.metrics.analyzed.labels(frame.source).inc()
            self.metrics.latency.labels(frame.source).observe(latency_s)
            for category, n in counts.items():
                self.metrics.people.labels(frame.source, category).set(n)
            self.metrics.sync_totals(frame.source, totals)
        for observer in self.observers:
            try:
                observer.observe(frame, detections, totals)
            except Exception:  # a dashboard that fails must not stop counting
                self.sink_errors += 1
                logger.exception("observer %s failed", type(observer).__name__)
        if self._aggregator is not None:
            self._aggregator.add(frame.source, latency_s, counts)
            return
        record = frame_record(
            frame.source,
            frame.index,
            frame.captured_at,
            latency_s,
            frame.size,
            detections,
            boxes=self.boxes,
            fields=self.pipelines.frame_fields,
        )
        record.update(totals)
        self._write(record)

    def _emit_intervals(self, force: bool = False) -> None:
        assert self._aggregator is not None
        dropped = {s.id: s.frames_dropped for s in self.sources}
        status = {s.id: s.status for s in self.sources}
        for record in self._aggregator.flush(dropped, status, force=force):
            record.update(self.pipelines.totals(record["source"]))
            self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            try:
                sink.write(record)
            except Exception as exc:  # an output that fails must not stop counting
                self.sink_errors += 1
                if self.sink_errors == 1 or self.sink_errors % 100 == 0:
                    logger.warning("output %s failed (%d so far): %s", type(sink).__name__, self.sink_errors, exc)

    def _sync_metrics(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.metrics is None or (not force and now - self._last_sync < 0.5):
            return
        self._last_sync = now
        m = self.metrics
        for s in self.sources:
            m.sync_counter(m.decoded, s.id, s.frames_decoded)
            m.sync_counter(m.dropped, s.id, s.frames_dropped)
            m.sync_counter(m.reconnects, s.id, s.reconnects)
            m.decode_fps.labels(s.id).set(round(s.decode_meter.rate(now), 3))
            m.dropped_fps.labels(s.id).set(round(s.drop_meter.rate(now), 3))
            m.inference_fps.labels(s.id).set(round(self._stats[s.id].meter.rate(now), 3))
            m.up.labels(s.id).set(1 if s.status == STREAMING else 0)

    # -- status ---------------------------------------------------------------------------------------
    def snapshot(self) -> list[SourceStatus]:
        """Every source's current status, in the order given."""
        now = time.monotonic()
        rows = []
        for s in self.sources:
            st = self._stats[s.id]
            status = s.status
            if status == ENDED and st.analyzed + s.frames_dropped < s.frames_decoded:
                status = STREAMING  # its last frames are still being analysed: ended once they are counted
            rows.append(
                SourceStatus(
                    source=s.id,
                    target=s.spec.display,
                    mode=s.mode,
                    status=status,
                    decode_fps=round(s.decode_meter.rate(now), 1),
                    inference_fps=round(st.meter.rate(now), 1),
                    people_now=dict(st.people_now),
                    people_max=dict(st.people_max),
                    frames_decoded=s.frames_decoded,
                    frames_analyzed=st.analyzed,
                    frames_dropped=s.frames_dropped,
                    reconnects=s.reconnects,
                    size=s.size,
                    latency_ms=round(st.latency_s * 1000.0, 1) if st.latency_s is not None else None,
                    last_error=s.last_error,
                    counting=dict(st.counting) or self.pipelines.totals(s.id),
                )
            )
        return rows

    @property
    def failed_sources(self) -> list[str]:
        return [s.id for s in self.sources if s.status == FAILED]

    @property
    def ended(self) -> bool:
        return all(s.status in (ENDED, FAILED) for s in self.sources)


def _file_fps(source: Source) -> float:
    """The frame rate of a file source (its frames are timed by index, as ``analyze`` times them); 0 for the
    others (timed by their capture clock)."""
    if source.spec.kind != "file":
        return 0.0
    import cv2

    capture = cv2.VideoCapture(source.spec.target)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return usable_fps(fps)
