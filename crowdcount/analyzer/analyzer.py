"""The VideoAnalyzer: runs built detectors over the sampled frames of a video, in batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdcount import __version__
from crowdcount.analyzer.video import Frame, FrameReader, FrameSampler, VideoInfo, probe_video
from crowdcount.detectors import Detections, Detector
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

#: Called with the number of frames decoded since the last call and the expected total (0: unknown).
ProgressCallback = Callable[[int, int], None]


@dataclass
class FrameResult:
    """The detections of every detector in one analysed frame."""

    index: int
    timestamp_ms: float
    detections: dict[str, Detections]


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

    @property
    def categories(self) -> list[str]:
        return [d["category"] for d in self.detectors]

    @property
    def truncated(self) -> bool:
        """The decoder stopped clearly short of the frame count the container announced."""
        expected = self.video.frame_count
        return expected > 0 and self.frames_decoded < expected - max(1, expected // 100)


class VideoAnalyzer:
    """Samples frames of a video, batches them and runs every detector on each batch.

    Args:
        detectors: built detectors (see :func:`crowdcount.detectors.build_detector`), one per category.
        frame_ratio: share of frames analysed, in ``(0, 1]``: 0.2 analyses every fifth frame.
        max_batch_size: frames gathered before the detectors run (default: the largest of the
            detectors' own ``max_batch_size``; each detector splits further to its own limit).
        queue_size: decoded frames buffered ahead of inference.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        frame_ratio: float = 1.0,
        max_batch_size: int | None = None,
        queue_size: int | None = None,
    ) -> None:
        if not detectors:
            raise ConfigError("no detectors to run", "choose at least one, e.g. --detector human")
        categories = [d.category for d in detectors]
        duplicates = sorted({c for c in categories if categories.count(c) > 1})
        if duplicates:
            raise ConfigError(f"more than one detector reports category {', '.join(duplicates)}")
        try:
            self.sampler = FrameSampler(frame_ratio)
        except ValueError as exc:
            raise ConfigError(str(exc), "e.g. 1 analyses every frame, 0.2 every fifth") from None
        if max_batch_size is not None and (isinstance(max_batch_size, bool) or int(max_batch_size) < 1):
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size!r}")
        self.detectors = list(detectors)
        self.frame_ratio = self.sampler.frame_ratio
        self.max_batch_size = int(max_batch_size or max(d.max_batch_size for d in self.detectors))
        self.queue_size = queue_size or 2 * self.max_batch_size

    def load(self) -> None:
        """Load every detector's model (otherwise done on the first batch)."""
        for detector in self.detectors:
            detector.load()

    def analyze(self, path: str | Path, progress: ProgressCallback | None = None) -> AnalysisResult:
        """Analyse one video file. Raises :class:`crowdcount.errors.VideoError` when it cannot be read."""
        info = probe_video(path)
        self.load()
        result = AnalysisResult(
            video=info,
            frame_ratio=self.frame_ratio,
            detectors=[d.describe() for d in self.detectors],
        )
        started = time.perf_counter()
        reader = FrameReader(info, self.frame_ratio, self.queue_size)
        batch: list[Frame] = []
        reported = 0
        with reader:
            for frame in reader:
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

    def _run_batch(self, batch: list[Frame], result: AnalysisResult) -> None:
        images = [f.rgb for f in batch]
        per_detector = [detector.detect(images) for detector in self.detectors]
        for i, frame in enumerate(batch):
            result.frames.append(
                FrameResult(
                    index=frame.index,
                    timestamp_ms=frame.timestamp_ms,
                    detections={d.category: dets[i] for d, dets in zip(self.detectors, per_detector, strict=True)},
                )
            )
