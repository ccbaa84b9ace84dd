"""Frame processors: steps that run after the detectors on every analysed frame, in frame order.

A processor sees each :class:`~crowdcount.analyzer.analyzer.FrameResult` (and its RGB image) once, in order.
It may replace a frame's detections with richer ones (for example adding ``Detections.data["track_id"]``),
and contributes one section to the result file when the video ends. Tracking, line and zone counting,
face identification and annotated-video writers are processors; the analyzer knows none of them by name.

Processors are reused across videos: :meth:`FrameProcessor.start` resets their per-video state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.video import VideoInfo


#: ``Detections.data`` key (bool) marking boxes that score under their detector's ``min_detection_score``:
#: present only when a processor asked for them through ``score_floors``. The analyzer drops them after the
#: last processor, so results and counts never hold them.
BELOW_THRESHOLD = "below_threshold"


#: Live sources: how often, and after how long unseen, processors forget a person (line sides, zone visits,
#: unknown faces), in seconds. Ten minutes is far beyond any re-link, so a forgotten person does not come back.
FORGET_EVERY_S = 10.0
FORGET_AFTER_S = 600.0


class FrameProcessor(ABC):
    """One step after detection.

    Attributes:
        name: key of this processor's section in the result file (and in ``AnalysisResult.sections``).
        frame_fields: ``Detections.data`` keys this processor adds, mapped to the per-detection field name
            they get in the result file (e.g. ``{"track_id": "track_ids"}``); only 1-D arrays.
        score_floors: categories whose detectors should also return boxes scoring under their threshold, down
            to this score (e.g. ``{"Human": 0.1}`` for a ByteTrack-style tracker); those boxes are marked
            ``data[BELOW_THRESHOLD]`` and removed by the analyzer after the last processor.
        live: the frames come from a live source (a camera): no result file is written, nothing may grow with
            the number of frames.
    """

    name: ClassVar[str] = ""
    frame_fields: ClassVar[dict[str, str]] = {}
    score_floors: dict[str, float] = {}  # noqa: RUF012 - read-only default; instances set their own
    #: Set (before :meth:`start`) when frames come from a live source that has no end: the processor keeps only
    #: what its live outputs need, so that its memory and time a frame stay bounded however long it runs, and
    #: :meth:`finish` is not called.
    live: bool = False

    def start(self, video: VideoInfo, frame_ratio: float) -> None:  # noqa: B027 - optional hook
        """Reset per-video state before the first frame of ``video``."""

    @abstractmethod
    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        """Handle one analysed frame (``image`` is its RGB pixels; do not keep a reference to it)."""

    def finish(self) -> dict[str, Any] | None:
        """The result-file section for the video just analysed (JSON-serialisable), or ``None``."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (files, writers) after the last frame; called even when the analysis fails."""

    def describe(self) -> dict[str, Any]:
        """Name and settings, recorded in the result file."""
        return {"name": self.name}
