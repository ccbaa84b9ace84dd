"""Frame processors from a configuration's ``tracking`` block: the tracker, line and zone counting, the
annotated-video writer, in the order they must run. ``crowdcount analyze`` and the worker build them here, so
both write the same counts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crowdcount.analyzer.contacts import Calibration, ContactsProcessor
from crowdcount.analyzer.counting import CountingProcessor, Line, Zone, parse_lines, parse_zones
from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.analyzer.scenery import SceneryFilter
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.detectors import Detector
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

#: ``tracking`` block keys passed to :class:`TrackingProcessor` as they are.
TRACKER_KEYS = (
    "low_score",
    "activation_score",
    "lost_track_s",
    "min_iou",
    "buffer_per_s",
    "confirm_frames",
    "appearance",
    "relink_s",
    "link_threshold",
    "merge_threshold",
    "link_window_s",
    "max_speed",
    "gallery_size",
    "embed_interval_s",
    "refresh_s",
    "max_embeds_per_frame",
    "split_threshold",
    "associate_weight",
)


def build_processors(
    block: Mapping[str, Any],
    detectors: Sequence[Detector],
    lines: Sequence[Line] | None = None,
    zones: Sequence[Zone] | None = None,
    annotate: Callable[[Any], str | Path | None] | None = None,
    category: str = "Human",
    calibration: Calibration | None = None,
) -> list[FrameProcessor]:
    """The processors a ``tracking`` block asks for: the scenery filter (``scenery``), the tracker, line and zone
    counting, the annotated-video writer.

    ``lines`` and ``zones`` (parsed from the command line) replace the block's ``lines`` and ``zones`` when
    given. ``high_score`` null means the tracked detector's own ``min_detection_score``. Without a detector of
    ``category`` there is nothing to track: tracking is skipped, and lines or zones are an error.
    ``calibration`` (or the block's ``calibration`` file) adds close contacts (``contact_distance`` metres,
    ``contact_seconds``), which also need tracking.
    """
    if calibration is None and block.get("calibration"):
        calibration = Calibration.load(block["calibration"])
    if lines is None:
        lines = parse_lines(block.get("lines", []), "tracking.lines")
    if zones is None:
        zones = parse_zones(block.get("zones", []), "tracking.zones")
    tracked = next((d for d in detectors if d.category == category), None)
    processors: list[FrameProcessor] = []
    if tracked is not None and block.get("scenery", True):
        processors.append(SceneryFilter(category))
    tracking: TrackingProcessor | None = None
    counting: CountingProcessor | None = None
    if block.get("enabled", True) and tracked is not None:
        high = block.get("high_score")
        tracking = TrackingProcessor(
            category=category,
            high_score=tracked.min_detection_score if high is None else high,
            min_track_s=block.get("min_track_s", 1.0),
            store_embeddings=block.get("embeddings", False),
            **{k: block[k] for k in TRACKER_KEYS if k in block},
        )
        processors.append(tracking)
        if calibration is not None:
            processors.append(
                ContactsProcessor(
                    calibration, block.get("contact_distance", 1.5), block.get("contact_seconds", 2.0), category
                )
            )
    elif calibration is not None:
        raise ConfigError("close contacts need tracked people, but tracking is off", "drop --no-track")
    elif lines or zones:
        reason = "tracking is off" if tracked is not None else f"no {category} detector runs"
        raise ConfigError(
            f"counting lines and zones needs tracked people, but {reason}",
            f"run the {category} detector with tracking on (drop --no-track)",
        )
    elif tracked is None:
        logger.info("no %s detector: tracking skipped", category)
    if lines or zones:
        counting = CountingProcessor(list(lines), list(zones), category, block.get("line_hysteresis", 0.1))
        processors.append(counting)
    if annotate is not None:
        from crowdcount.analyzer.annotate import AnnotateProcessor

        processors.append(AnnotateProcessor(annotate, tracking, counting))
    return processors
