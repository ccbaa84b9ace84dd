"""The one assembly of the analysis: :func:`build_pipeline` builds the detectors and the frame processors of a
configuration in fixed stages -- track -> count -> identify -> annotate -- for every entry point (``crowdcount
analyze``, the worker, the upload-triggered handler), so that all write the same result file for one clip.
:func:`build_processors` builds the stages of a ``tracking`` block alone (``find``, eval), and
:func:`assemble_pipeline` a pipeline of detectors already built (the second half of :func:`build_pipeline`).

Faces are identified by a processor this package does not know: the caller passes ``galleries``, which turns a
gallery location into the identify stage (:func:`crowdcount.faces.identify.gallery_stage`), so that the analyzer
imports neither faces nor clouds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowdcount.analyzer.contacts import Calibration, ContactsProcessor
from crowdcount.analyzer.counting import CountingProcessor, Line, Zone, parse_lines, parse_zones
from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.analyzer.scenery import SceneryFilter
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.config import Config, build_detectors
from crowdcount.detectors import Detector, resolve_name
from crowdcount.errors import ConfigError

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import VideoAnalyzer

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
    identify: Sequence[FrameProcessor] = (),
) -> list[FrameProcessor]:
    """The processors a ``tracking`` block asks for: the scenery filter (``scenery``), the tracker, line and zone
    counting, then ``identify`` (e.g. the face identifier), then the annotated-video writer.

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
        if tracked is None:
            raise ConfigError(
                f"close contacts need tracked people, but no {category} detector runs",
                f"run the {category} detector with tracking on",
            )
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
        counting = CountingProcessor(
            list(lines), list(zones), category, block.get("line_hysteresis", 0.1), tracking=tracking
        )
        processors.append(counting)
    processors.extend(identify)  # before the annotated video is drawn: it shows the names
    if annotate is not None:
        from crowdcount.analyzer.annotate import AnnotateProcessor

        processors.append(AnnotateProcessor(annotate, tracking, counting))
    return processors


#: Turns a gallery location into the identify stage (a frame processor naming faces).
GalleryStage = Callable[[str], FrameProcessor]
#: The annotated-video path of each video (``VideoInfo`` -> path, or ``None`` for no annotated video).
AnnotateFor = Callable[[Any], str | Path | None]
#: The detector identification needs.
FACE_DETECTOR = "face"


@dataclass(frozen=True)
class PipelineOverrides:
    """What an entry point sets over the configuration (``None``: the configuration's).

    Args:
        detectors: ``[[name, {arguments}], ...]`` replacing the block's ``detectors``.
        lines / zones: replace the ``tracking`` block's.
        annotate: the annotated-video path of each video (``VideoInfo`` -> path or ``None``).
        gallery: the gallery to identify faces against (``--identify``), over ``faces.gallery``.
        calibration: close contacts' ground calibration, over ``tracking.calibration``.
    """

    detectors: Sequence[Sequence[Any]] | None = None
    lines: Sequence[Line] | None = None
    zones: Sequence[Zone] | None = None
    annotate: Callable[[Any], str | Path | None] | None = None
    gallery: str | None = None
    calibration: Calibration | None = None


@dataclass
class Pipeline:
    """Built detectors and frame processors (in stage order), and the analyzer block they came from."""

    detectors: list[Detector]
    processors: list[FrameProcessor]
    block: Mapping[str, Any] = field(default_factory=dict)
    #: builds another set of the same stages for the same detectors (another live source); see :meth:`fresh`
    assemble: Callable[..., list[FrameProcessor]] | None = None

    def fresh(
        self,
        annotate: AnnotateFor | None = None,
        lines: Sequence[Line] | None = None,
        zones: Sequence[Zone] | None = None,
    ) -> list[FrameProcessor]:
        """A new set of this pipeline's processors (their own tracker, counters and identifier) for the same
        detectors: each live source needs its own. ``annotate`` replaces the pipeline's annotated-video paths;
        ``lines`` and ``zones`` (a camera's own), when given, replace the pipeline's."""
        if self.assemble is None:
            raise ValueError("this pipeline was not built by build_pipeline: it cannot build its stages again")
        return self.assemble(annotate, None, lines, zones)

    def detector(self, category: str) -> Detector | None:
        """The detector reporting ``category`` (e.g. ``"Face"``), if one runs."""
        return next((d for d in self.detectors if d.category == category), None)

    @property
    def identifier(self) -> FrameProcessor | None:
        """The identify stage (the processor named ``faces``), when faces are identified."""
        return next((p for p in self.processors if p.name == "faces"), None)

    def analyzer(self) -> VideoAnalyzer:
        """A :class:`~crowdcount.analyzer.VideoAnalyzer` running this pipeline with the block's frame ratio,
        smoothing and batch size."""
        from crowdcount.analyzer.analyzer import VideoAnalyzer

        return VideoAnalyzer.from_config(dict(self.block), self.detectors, self.processors)


def build_pipeline(
    config: Config,
    overrides: PipelineOverrides | None = None,
    galleries: GalleryStage | None = None,
    block: str = "human_detection",
) -> Pipeline:
    """The detectors and processors of ``config`` (its ``block`` analyzer block, ``tracking`` and ``faces``)
    with ``overrides``, in stage order: scenery, track, contacts, count, identify, annotate.

    A gallery (``overrides.gallery`` or ``faces.gallery``) adds the identify stage, built by ``galleries``
    from the location, and the face detector when the detectors lack one (with the block's arguments for it,
    if it lists any). :class:`ConfigError` when a gallery is set but ``galleries`` is not given."""
    overrides = overrides or PipelineOverrides()
    section = config[block]
    specs = [list(spec) for spec in (overrides.detectors if overrides.detectors is not None else section["detectors"])]
    location = overrides.gallery or config["faces"]["gallery"]
    identify: list[FrameProcessor] = []
    if location:
        if galleries is None:
            raise ConfigError(
                f"identifying faces against {location} needs a gallery opener",
                "pass crowdcount.faces.identify.gallery_stage(config)",
            )
        identify.append(galleries(location))  # opened here: a bad gallery fails before any model loads
        if FACE_DETECTOR not in {resolve_name(name) for name, *_ in specs}:  # identification needs faces
            arguments: Mapping[str, Any] = next(
                (a for n, a in section["detectors"] if resolve_name(n) == FACE_DETECTOR), {}
            )
            specs.append([FACE_DETECTOR, dict(arguments)])
    detectors = build_detectors(specs)
    stage = (lambda: [galleries(location)]) if location and galleries else None
    return assemble_pipeline(
        detectors,
        config["tracking"],
        section,
        lines=overrides.lines,
        zones=overrides.zones,
        annotate=overrides.annotate,
        calibration=overrides.calibration,
        identify=stage,
        first_identify=identify,
    )


def assemble_pipeline(
    detectors: Sequence[Detector],
    tracking: Mapping[str, Any],
    block: Mapping[str, Any] | None = None,
    *,
    lines: Sequence[Line] | None = None,
    zones: Sequence[Zone] | None = None,
    annotate: AnnotateFor | None = None,
    calibration: Calibration | None = None,
    identify: Callable[[], list[FrameProcessor]] | None = None,
    first_identify: Sequence[FrameProcessor] | None = None,
) -> Pipeline:
    """A :class:`Pipeline` of built ``detectors`` and the stages of a ``tracking`` block
    (:func:`build_processors`), which :meth:`Pipeline.fresh` builds again for each live source: what
    :func:`build_pipeline` returns once it has built the detectors, and what a caller holding built detectors
    (a test, a library user) uses. ``identify`` makes a new identify stage for each build (``first_identify``:
    the one the first build uses, already made); ``block`` is the analyzer block (frame ratio, smoothing)."""

    def stages(
        annotate: AnnotateFor | None,
        first: Sequence[FrameProcessor] | None = None,
        own_lines: Sequence[Line] | None = None,
        own_zones: Sequence[Zone] | None = None,
    ) -> list[FrameProcessor]:
        stage = list(first) if first is not None else (identify() if identify is not None else [])
        return build_processors(
            tracking,
            detectors,
            lines if own_lines is None else own_lines,
            zones if own_zones is None else own_zones,
            annotate,
            calibration=calibration,
            identify=stage,
        )

    return Pipeline(list(detectors), stages(annotate, first_identify), dict(block or {}), stages)
