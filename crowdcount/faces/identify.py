"""Identification in videos: a frame processor that names each face, and counts distinct people (and
:meth:`FaceIdentifier.identify` for single images).

Each face the face detector found gets an identity (a gallery name, or ``unknown``) and the cosine
similarity of its best gallery match; faces not in the gallery are clustered online into unknown people
(``unknown-1``, ``unknown-2``...) with the embedder's stricter ``cluster_threshold``: a face joins the
unknown person whose mean vector is most similar, if at least that similar, else starts a new one. The
result file's ``faces`` section says who appeared and when (first and last seen, seconds on screen) and how
many different people showed their face.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from crowdcount.analyzer.processors import FORGET_AFTER_S, FORGET_EVERY_S, FrameProcessor
from crowdcount.config import Config
from crowdcount.detectors.base import Detections
from crowdcount.detectors.embedders import FaceEmbedder
from crowdcount.errors import ConfigError, GalleryError
from crowdcount.faces.gallery import UNKNOWN, Gallery, GalleryIndex

if TYPE_CHECKING:
    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.video import VideoInfo

logger = logging.getLogger(__name__)

FACE = "Face"


@dataclass
class Sighting:
    """When one person (known or an unknown cluster) was seen."""

    first_ms: float
    last_ms: float
    frames: int = 0
    best_similarity: float = -1.0
    #: Sum of the unit vectors (unknown clusters: the mean direction is the cluster's centre).
    vector_sum: np.ndarray | None = field(default=None, repr=False)
    #: Unknown clusters: the number in the cluster's name (``unknown-N``).
    number: int = 0

    def add(self, timestamp_ms: float, similarity: float) -> None:
        self.first_ms = min(self.first_ms, timestamp_ms)
        self.last_ms = max(self.last_ms, timestamp_ms)
        self.frames += 1
        self.best_similarity = max(self.best_similarity, similarity)


class FaceIdentifier(FrameProcessor):
    """Names the faces of every analysed frame against a gallery and clusters the unknown ones.

    The gallery's vectors are matched in memory; the gallery is checked for changes (its file's modification
    time, its table's version item: one cheap call) at the start of every video and every time :attr:`index`
    is read, and re-read when it changed, so a person enrolled, removed or forgotten meanwhile is named, or no
    longer named, from the next job on (the worker) or the next image (the upload handler).

    Args:
        gallery: the people to recognise.
        embedder: the embedder the gallery was built with.
        match_threshold / cluster_threshold: override the embedder's calibrated ones.
        min_sightings: an unknown person counts as distinct only when seen in at least this many analysed
            frames (single false detections are not people).
        min_face_size: faces narrower than this many pixels are left ``unknown`` with similarity 0 and are
            not clustered (too small to identify reliably).
    """

    name: ClassVar[str] = "faces"
    frame_fields: ClassVar[dict[str, str]] = {
        "identity": "identities",
        "similarity": "similarities",
        "person": "people",
    }

    def __init__(
        self,
        gallery: Gallery,
        embedder: FaceEmbedder,
        match_threshold: float | None = None,
        cluster_threshold: float | None = None,
        min_sightings: int = 2,
        min_face_size: int = 24,
    ) -> None:
        self.embedder = embedder
        self.gallery = gallery
        self.gallery_location = gallery.location
        embedder.load()
        self._index = self._build_index()
        self.match_threshold = embedder.match_threshold if match_threshold is None else float(match_threshold)
        self.cluster_threshold = embedder.cluster_threshold if cluster_threshold is None else float(cluster_threshold)
        if isinstance(min_sightings, bool) or int(min_sightings) < 1:
            raise ConfigError(f"min_sightings must be >= 1, got {min_sightings!r}")
        self.min_sightings = int(min_sightings)
        self.min_face_size = int(min_face_size)
        self._known: dict[str, Sighting] = {}
        self._unknown: list[Sighting] = []
        self._frame_ms = 0.0
        self._faces = 0
        self._swept_ms = -1e18
        self._next_unknown = 0

    def _build_index(self) -> GalleryIndex:
        self.gallery.check_embedder({"name": self.embedder.name, "dim": self.embedder.dim})
        index = self.gallery.index()
        if index.dim and index.dim != self.embedder.dim:
            raise ConfigError(f"gallery vectors are {index.dim}-d, the embedder's {self.embedder.dim}-d")
        index.dim = self.embedder.dim
        return index

    def refresh(self) -> bool:
        """Re-read the gallery if it changed since it was read; ``True`` when it did.

        Errors (the gallery unreadable, now of another embedder) are raised, never hidden behind stale
        vectors: a forgotten person must not be named."""
        if self.gallery.refresh():
            self._index = self._build_index()
            logger.info("gallery %s changed: %d people now", self.gallery_location, len(self._index))
            return True
        return False

    @property
    def index(self) -> GalleryIndex:
        """The gallery's vectors, after checking that the gallery did not change (:meth:`refresh`)."""
        self.refresh()
        return self._index

    def start(self, video: VideoInfo, frame_ratio: float) -> None:
        self.refresh()  # once per video: a gallery changed since the last job is re-read
        self._known = {}
        self._unknown = []
        self._faces = 0
        self._swept_ms = -1e18
        self._next_unknown = 0
        # each analysed frame stands for this long on screen (an unknown frame rate is taken as 25 fps, as the
        # tracker, the zones and the annotated video take it)
        self._frame_ms = 1000.0 / ((video.fps if video.fps > 0 else 25.0) * frame_ratio)

    def identify(self, image: np.ndarray, faces: Detections) -> Detections:
        """``faces`` (of one RGB ``image``) with each face's ``identity`` (a gallery name, or ``unknown``) and
        ``similarity``: for single images (the upload handler). Unknown faces are not clustered and nothing
        is counted; the gallery is re-read first when it changed."""
        identities = np.array([UNKNOWN] * len(faces), dtype=object)
        similarities = np.zeros(len(faces), np.float32)
        if len(faces):
            usable = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) >= self.min_face_size
            if usable.any():
                matches = self.index.match(self.embedder.embed(image, faces[usable]), self.match_threshold)
                rows = np.flatnonzero(usable)
                identities[rows] = matches.names
                similarities[rows] = matches.similarities
        data = {**faces.data, "identity": identities, "similarity": similarities}
        return Detections(faces.xyxy, faces.confidence, faces.class_id, data)

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        faces = frame.detections.get(FACE)
        if faces is None:
            return
        n = len(faces)
        identities = np.array([UNKNOWN] * n, dtype=object)
        people = np.array([UNKNOWN] * n, dtype=object)
        similarities = np.zeros(n, np.float32)
        if n:
            self._faces += n
            usable = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) >= self.min_face_size
            if usable.any():
                vectors = self.embedder.embed(image, faces[usable])
                matches = self._index.match(vectors, self.match_threshold)
                rows = np.flatnonzero(usable)
                identities[rows] = matches.names
                similarities[rows] = matches.similarities
                for row, name, sim, vector in zip(rows, matches.names, matches.similarities, vectors, strict=True):
                    if name != UNKNOWN:
                        people[row] = name
                        seen = self._known.setdefault(name, Sighting(frame.timestamp_ms, frame.timestamp_ms))
                        seen.add(frame.timestamp_ms, float(sim))
                    else:
                        people[row] = self._cluster(vector, frame.timestamp_ms)
        data = dict(faces.data)
        data.update({"identity": identities, "similarity": similarities, "person": people})
        frame.detections[FACE] = Detections(faces.xyxy, faces.confidence, faces.class_id, data)
        if self.live and frame.timestamp_ms - self._swept_ms >= FORGET_EVERY_S * 1000.0:
            # a camera never ends: unknown people not seen for a while are forgotten (their numbers not reused),
            # so that memory and the search of every new face stay the size of the recent crowd
            self._unknown = [s for s in self._unknown if frame.timestamp_ms - s.last_ms <= FORGET_AFTER_S * 1000.0]
            self._swept_ms = frame.timestamp_ms

    def _cluster(self, vector: np.ndarray, timestamp_ms: float) -> str:
        """The unknown person this face belongs to (a new one when none is similar enough)."""
        best, best_sim = -1, -np.inf
        if self._unknown:
            centres = np.stack([s.vector_sum for s in self._unknown])  # type: ignore[misc]
            centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
            sims = centres @ vector
            best = int(np.argmax(sims))
            best_sim = float(sims[best])
        if best < 0 or best_sim < self.cluster_threshold:
            self._next_unknown += 1
            self._unknown.append(
                Sighting(timestamp_ms, timestamp_ms, vector_sum=np.zeros_like(vector), number=self._next_unknown)
            )
            best, best_sim = len(self._unknown) - 1, 1.0
        cluster = self._unknown[best]
        cluster.vector_sum = cluster.vector_sum + vector
        cluster.add(timestamp_ms, best_sim)
        return f"{UNKNOWN}-{cluster.number}"

    def _entry(self, name: str, seen: Sighting) -> dict[str, Any]:
        return {
            "name": name,
            "first_seen_ms": round(seen.first_ms, 1),
            "last_seen_ms": round(seen.last_ms, 1),
            "seconds_on_screen": round(seen.frames * self._frame_ms / 1000.0, 2),
            "frames": seen.frames,
        }

    def finish(self) -> dict[str, Any]:
        known = [
            {**self._entry(name, seen), "best_similarity": round(seen.best_similarity, 4)}
            for name, seen in sorted(self._known.items(), key=lambda kv: kv[1].first_ms)
        ]
        unknown = [
            self._entry(f"{UNKNOWN}-{seen.number}", seen) for seen in self._unknown if seen.frames >= self.min_sightings
        ]
        return {
            **self.describe(),
            "faces_seen": self._faces,
            "known_people": len(known),
            "unknown_people": len(unknown),
            "distinct_people": len(known) + len(unknown),
            "people": known,
            "unknown": unknown,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gallery": {"location": self.gallery_location, "people": len(self._index)},
            "embedder": self.embedder.describe(),
            "match_threshold": self.match_threshold,
            "cluster_threshold": self.cluster_threshold,
            "min_sightings": self.min_sightings,
            "min_face_size": self.min_face_size,
        }


def identifier_from_config(block: Mapping[str, Any], gallery: Gallery) -> FaceIdentifier:
    """A :class:`FaceIdentifier` with the settings of a configuration's ``faces`` block."""
    from crowdcount.detectors.embedders import build_embedder

    embedder = build_embedder(block["embedder"])
    return FaceIdentifier(
        gallery,
        embedder,
        match_threshold=block.get("match_threshold"),
        cluster_threshold=block.get("cluster_threshold"),
        min_sightings=block.get("min_sightings", 2),
        min_face_size=block.get("min_face_size", 24),
    )


def gallery_stage(config: Config, options: Mapping[str, Any] | None = None) -> Callable[[str], FaceIdentifier]:
    """What :func:`crowdcount.analyzer.pipeline.build_pipeline` takes as ``galleries``: a gallery location ->
    a :class:`FaceIdentifier` with the settings of ``config``'s ``faces`` block. The gallery is opened by
    :func:`crowdcount.faces.gallery.open_gallery`, with ``options`` (and ``config``) for its scheme's opener
    (e.g. an AWS context under ``aws`` for ``dynamodb://``)."""
    from crowdcount.faces.gallery import open_gallery

    opener_options = {"config": config, **(options or {})}

    def stage(location: str) -> FaceIdentifier:
        if "://" not in location and not os.path.exists(location):  # a typo (or a broken link) would name no one
            raise GalleryError(
                f"gallery {location} does not exist",
                f"enrol people into it first (crowdcount faces enroll NAME PHOTO -g {location}), "
                "or check --identify / faces.gallery",
            )
        return identifier_from_config(config["faces"], open_gallery(location, opener_options))

    return stage
