"""The VideoAnalyzer: runs built detectors over the sampled frames of a video, in batches."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdcount import __version__
from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.analyzer.runner import FrameBatchRunner, FrameResult
from crowdcount.analyzer.video import Frame, FrameReader, VideoInfo, probe_video, sample_ratio
from crowdcount.config import HumanDetectionConfig, check_setting
from crowdcount.detectors import Detector

logger = logging.getLogger(__name__)

#: Called with the number of frames decoded since the last call and the expected total (0: unknown).
ProgressCallback = Callable[[int, int], None]


__all__ = ["AnalysisResult", "FrameResult", "ProgressCallback", "VideoAnalyzer"]


@dataclass
class AnalysisResult:
    """Everything one analysis found in one video; :func:`crowdcount.analyzer.result.to_document` makes
    the result file of it."""

    video: VideoInfo
    frame_ratio: float
    detectors: list[dict[str, Any]]
    frames: list[FrameResult] = field(default_factory=list)
    frames_decoded: int = 0
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    crowdcount_version: str = __version__
    #: Counts in the summary and CSV are a centred running median over this many seconds (0: raw counts).
    count_smoothing_s: float = 0.0
    #: Result-file sections of the frame processors, by processor name.
    sections: dict[str, Any] = field(default_factory=dict)
    #: ``Detections.data`` keys written per detection in the result file, and their field names there.
    frame_fields: dict[str, str] = field(default_factory=dict)
    processors: list[dict[str, Any]] = field(default_factory=list)
    #: The analysis stopped after this 1-based frame on request (``None``: it ran to the end of the video).
    last_frame: int | None = None

    @property
    def categories(self) -> list[str]:
        return [d["category"] for d in self.detectors]

    @property
    def truncated(self) -> bool:
        """The decoder stopped clearly short of the frame count the container announced."""
        expected = self.video.frame_count
        return self.last_frame is None and expected > 0 and self.frames_decoded < expected - max(1, expected // 100)


class VideoAnalyzer:
    """Samples frames of a video, batches them and runs every detector on each batch.

    Args:
        detectors: built detectors (see :func:`crowdcount.detectors.build_detector`), one per category.
        frame_ratio: share of frames analysed, in ``(0, 1]``: 0.2 analyses every fifth frame. ``None``: picked
            per video from ``sample_fps``.
        sample_fps: with ``frame_ratio`` None, analyse this many frames of each second of video (all frames of a
            video slower than that): the tracker then sees the same time step whatever the camera's frame rate.
        max_batch_size: frames gathered before the detectors run (default: the largest of the
            detectors' own ``max_batch_size``; each detector splits further to its own limit).
        queue_size: decoded frames buffered ahead of inference.
        processors: steps run after the detectors on every analysed frame, in order (tracking, counting
            lines and zones, annotation...; see :class:`crowdcount.analyzer.processors.FrameProcessor`).
        count_smoothing_s: report per-frame counts as a centred running median over this many seconds of
            analysed frames (0: raw counts; see :func:`crowdcount.analyzer.counts.smoothing_window`).
            Detections themselves are never changed.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        frame_ratio: float | None = 1.0,
        max_batch_size: int | None = None,
        queue_size: int | None = None,
        processors: Sequence[FrameProcessor] = (),
        count_smoothing_s: float = 0.0,
        sample_fps: float | None = None,
    ) -> None:
        # the configuration's limits (one home: HumanDetectionConfig), whether the value came from a file or not
        frame_ratio = check_setting(HumanDetectionConfig, "frame_ratio", frame_ratio)
        if frame_ratio is None:
            sample_fps = check_setting(HumanDetectionConfig, "sample_fps", sample_fps)
        #: the configured share of frames (None: per video, from ``sample_fps``; see :meth:`frame_ratio_for`)
        self.frame_ratio = None if frame_ratio is None else float(frame_ratio)
        self.sample_fps = None if sample_fps is None else float(sample_fps)
        count_smoothing_s = check_setting(HumanDetectionConfig, "count_smoothing_s", count_smoothing_s)
        #: batches, detects and splits the frames; runs the processors (the same runner as the live paths)
        self.runner = FrameBatchRunner(detectors, processors, max_batch_size)
        self.processors = self.runner.processors
        self.count_smoothing_s = float(count_smoothing_s)
        self.max_batch_size = self.runner.max_batch_size
        self.queue_size = queue_size or 2 * self.max_batch_size

    @property
    def detectors(self) -> list[Detector]:
        """The detectors the runner calls (replaceable, e.g. by the worker's checkpoint-replaying wrappers)."""
        return self.runner.detectors

    @detectors.setter
    def detectors(self, detectors: Sequence[Detector]) -> None:
        self.runner.detectors = list(detectors)

    @classmethod
    def from_config(
        cls,
        block: HumanDetectionConfig | Mapping[str, Any],
        detectors: Sequence[Detector],
        processors: Sequence[FrameProcessor] = (),
    ) -> VideoAnalyzer:
        """An analyzer with the settings of a configuration's ``human_detection`` section (``config.human_detection``,
        or as plain data, ``config["human_detection"]``)."""
        if isinstance(block, HumanDetectionConfig):
            return cls(
                detectors,
                frame_ratio=block.frame_ratio,
                max_batch_size=block.max_batch_size,
                processors=processors,
                count_smoothing_s=block.count_smoothing_s,
                sample_fps=block.sample_fps,
            )
        return cls(
            detectors,
            frame_ratio=block["frame_ratio"],
            max_batch_size=block.get("max_batch_size"),
            processors=processors,
            count_smoothing_s=block.get("count_smoothing_s", 0.0),
            sample_fps=block.get("sample_fps"),
        )

    def frame_ratio_for(self, video: VideoInfo) -> float:
        """The share of ``video``'s frames analysed: ``frame_ratio``, else ``sample_fps`` over the video's rate.

        A video whose frame rate is unknown (0) is analysed whole, as is one slower than ``sample_fps``.
        """
        if self.frame_ratio is not None:
            return self.frame_ratio
        assert self.sample_fps is not None  # checked in __init__
        return sample_ratio(video.fps, self.sample_fps)

    def load(self) -> None:
        """Load every detector's model (otherwise done on the first batch)."""
        self.runner.load()

    def analyze(
        self, path: str | Path, progress: ProgressCallback | None = None, last_frame: int | None = None
    ) -> AnalysisResult:
        """Analyse one video file. Raises :class:`crowdcount.errors.VideoError` when it cannot be read.

        ``last_frame`` stops after that 1-based frame (e.g. the last annotated one, for an evaluation).
        """
        info = probe_video(path)
        self.load()
        for detector in self.detectors:  # per-video state (e.g. the human detector's zoom decision) starts again
            detector.reset()
        frame_ratio = self.frame_ratio_for(info)
        result = AnalysisResult(
            video=info,
            frame_ratio=frame_ratio,
            detectors=[d.describe() for d in self.detectors],
            count_smoothing_s=self.count_smoothing_s,
            processors=[p.describe() for p in self.processors],
            last_frame=last_frame,
        )
        for processor in self.processors:
            result.frame_fields.update(processor.frame_fields)
            processor.start(info, frame_ratio)
        started = time.perf_counter()
        reader = FrameReader(info, frame_ratio, self.queue_size)
        batch: list[Frame] = []
        reported = 0
        with reader, self._closing_processors():
            for frame in reader:
                if last_frame is not None and frame.index > last_frame:
                    break
                if batch and frame.rgb.shape != batch[0].rgb.shape:
                    self._run_batch(batch, result)
                    batch = []
                batch.append(frame)
                if len(batch) >= self.max_batch_size:
                    self._run_batch(batch, result)
                    batch = []
                if progress is not None:
                    progress(frame.index - reported, info.frame_count)
                    reported = frame.index
            if batch:
                self._run_batch(batch, result)
        if progress is not None and reader.frames_decoded > reported:
            progress(reader.frames_decoded - reported, info.frame_count)
        result.frames_decoded = reader.frames_decoded
        for processor in self.processors:
            section = processor.finish()
            if section is not None:
                result.sections[processor.name] = section
        result.elapsed_s = time.perf_counter() - started
        if result.truncated:
            message = (
                f"{info.path}: decoded {result.frames_decoded} of {info.frame_count} frames "
                "(truncated or corrupt video); results cover the frames that decoded"
            )
            logger.warning(message)
            result.warnings.append(message)
        logger.info(
            "analysed %s: %d frames decoded, %d analysed in %.1fs",
            info.path,
            result.frames_decoded,
            len(result.frames),
            result.elapsed_s,
        )
        return result

    @contextlib.contextmanager
    def _closing_processors(self) -> Iterator[None]:
        try:
            yield
        finally:
            for processor in self.processors:
                try:
                    processor.close()
                except Exception:  # a failing close must not hide the analysis' own error
                    logger.exception("frame processor %s failed to close", processor.name)

    def score_floor(self, detector: Detector) -> float | None:
        """The lowest score any processor asks ``detector``'s category for, when under its threshold."""
        return self.runner.score_floor(detector)

    def _run_batch(self, batch: list[Frame], result: AnalysisResult) -> None:
        result.frames.extend(self.runner.run(batch))
