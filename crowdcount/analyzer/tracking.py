"""Multi-object tracking of people: ByteTrack (Roboflow's ``trackers`` package) plus appearance re-identification,
as a frame processor.

**Short term: ByteTrack.** Boxes are associated with tracks in two stages: boxes scoring at least ``high_score``
first, then the weak ones (down to ``low_score``) with the tracks left over, which keeps a person's track alive
while they are partly hidden. The detector is asked for those weak boxes through ``score_floors``; the analyzer
marks them and removes them after the last processor, so the result file and the per-frame counts keep the
detector's own threshold, while tracks, occupancy, line and zone counts also use the weak boxes a track recovered.
A ByteTrack track (a *tracklet*) ends when it has been lost for ``lost_track_s``.

**Long term: appearance.** A person hidden behind a post or another person for longer than that comes back as a new
tracklet. Each tracklet keeps a small *gallery* of appearance vectors (``gallery_size``, from
:class:`crowdcount.detectors.reid.PersonEmbedder`): a tracklet is embedded when it is new, a few more times while
its gallery fills (every ``embed_interval_s``), then only every ``refresh_s``; boxes overlapped by another box are
skipped (their crop shows two people) unless the tracklet has no vector yet. The crops of one frame go to the model
in one batch. Where ByteTrack's first-stage matching is ambiguous (a track could take two boxes, or a box go to two
tracks) the boxes involved are embedded and appearance re-ranks those pairs (``associate_weight``), which prevents
most swaps in groups and crossings. A young tracklet (its first ``link_window_s``) is *re-linked* online to a
person who was lost no more than ``relink_s`` ago when their galleries' mean vectors agree (cosine at least
``link_threshold``, clearly better than the next candidate) and the person could have walked there (``max_speed``
body heights a second, plus one). When the video ends a *merge pass* joins the remaining tracklets of one person
the same way (``merge_threshold``; never two tracklets seen at the same time) before the result is written, and
people are numbered 1, 2, 3... in order of appearance. With ``appearance`` off the tracker is plain ByteTrack.

Each reported box gets a ``track_id`` (``track_ids`` in the result file): the person's number, or -1 for a box
no confirmed track holds (confirmed: matched in ``confirm_frames`` consecutive analysed frames; once confirmed,
a track is also given the boxes it was first seen in, so a person's first frame is when they were first seen).
A person counts (``unique_people``) when they were seen over ``min_track_s`` seconds from first to last
sighting. Processors that run after the tracker in the same frame (lines, zones, the annotated video) see the
online ids; the result file has the ids after the merge pass (:meth:`TrackingProcessor.final_id`, which line
crossings and zone visitors are given too).

Time in the tracker is the video's timestamps, so ``frame_ratio`` < 1 only thins the observations: the Kalman
filter predicts over the real gap and the budgets are seconds, whatever the ratio.

**Live sources** (``live`` set: a camera has no end and no result file) keep no frames, and a person last seen
longer ago than any re-link or lost track reaches back (``relink_s`` or ``lost_track_s``, plus a second) is
forgotten and counted, so memory and the re-link search stay the size of the scene however long the camera
runs; :meth:`TrackingProcessor.unique_people` counts the online identities (re-linked tracklets once).
"""

from __future__ import annotations

import base64
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from crowdcount.analyzer.processors import BELOW_THRESHOLD, FrameProcessor
from crowdcount.config import TrackingConfig, check_setting
from crowdcount.detectors import Detections
from crowdcount.errors import ConfigError

if TYPE_CHECKING:
    from trackers.utils.iou import BaseIoU

    from crowdcount.analyzer.analyzer import FrameResult
    from crowdcount.analyzer.video import VideoInfo

logger = logging.getLogger(__name__)

#: ``Detections.data`` key of the track id of each box (-1: no confirmed track).
TRACK_ID = "track_id"
#: Track id of a box that belongs to no confirmed track.
NO_TRACK = -1
#: ``Detections.data`` key of each box's tracklet segment, until the final ids are written (then removed).
SEGMENT = "_track_segment"


class BoxEmbedder(Protocol):
    """What the tracker needs of an appearance model (:class:`crowdcount.detectors.reid.PersonEmbedder`)."""

    @property
    def name(self) -> str:
        """The embedder's name (vectors of different embedders cannot be compared)."""
        ...

    @property
    def dim(self) -> int:
        """The vectors' length."""
        ...

    def embed_boxes(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """``(N, dim)`` unit vectors of the boxes (pixels) in the RGB image."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name and model."""
        ...


@dataclass
class Track:
    """What was seen of one person (after the merge pass) or one tracklet."""

    track_id: int
    first_frame: int
    first_ms: float
    last_frame: int
    last_ms: float
    frames: int = 1
    #: Seconds on screen: the sum of the person's tracklets' spans (each plus one analysed frame).
    present_s: float = 0.0
    tracklets: int = 1
    embedding: np.ndarray | None = None

    def duration_s(self) -> float:
        """Seconds from the first to the last sighting."""
        return (self.last_ms - self.first_ms) / 1000.0


@dataclass
class Segment:
    """A stretch of one tracklet's sightings (a new one starts when another box begins to cover it): the unit
    that a split hands to a new tracklet and that the final ids are written for."""

    id: int
    first_frame: int
    first_ms: float
    first_box: np.ndarray
    last_frame: int
    last_ms: float
    last_box: np.ndarray
    frames: int = 1
    #: The sighting before the last one: ``(frame, ms, box)``.
    previous: tuple[int, float, np.ndarray] | None = None


@dataclass
class Tracklet:
    """One ByteTrack track (or the part of it after a split): its segments and its appearance gallery."""

    key: int
    segments: list[Segment]
    #: The online identity this tracklet was given (a key of the union-find of identities).
    identity: int = 0
    gallery: list[np.ndarray] = field(default_factory=list)
    next_slot: int = 0
    last_embed_ms: float = -1e18
    #: Time of the last view taken while no other box covered it.
    clean_ms: float = -1e18
    #: Another box covered it when last seen.
    covered: bool = False
    #: Covered at some point since the last clean view (the next clean view checks for an identity switch).
    dirty: bool = False

    @property
    def first_frame(self) -> int:
        return self.segments[0].first_frame

    @property
    def first_ms(self) -> float:
        return self.segments[0].first_ms

    @property
    def first_box(self) -> np.ndarray:
        return self.segments[0].first_box

    @property
    def last_frame(self) -> int:
        return self.segments[-1].last_frame

    @property
    def last_ms(self) -> float:
        return self.segments[-1].last_ms

    @property
    def last_box(self) -> np.ndarray:
        return self.segments[-1].last_box

    @property
    def frames(self) -> int:
        return sum(segment.frames for segment in self.segments)

    def add(self, vector: np.ndarray, size: int, now_ms: float) -> None:
        if len(self.gallery) < size:
            self.gallery.append(vector)
        else:  # ring buffer: the oldest view goes
            self.gallery[self.next_slot % size] = vector
            self.next_slot += 1
        self.last_embed_ms = now_ms


def _number(value: Any, name: str) -> float:
    """``value`` checked as the configuration's ``tracking.<name>`` is: its type and limits live in
    :class:`~crowdcount.config.TrackingConfig`, for a file and for the processor's arguments alike."""
    checked = check_setting(TrackingConfig, name, value)
    if checked is None:
        raise ConfigError(f"config key 'tracking.{name}' must be a number here, got None")
    return float(checked)


def _feet(box: np.ndarray) -> tuple[float, float, float]:
    """Bottom-centre x, y and the height of an ``xyxy`` box."""
    return float(box[0] + box[2]) / 2, float(box[3]), max(float(box[3] - box[1]), 1.0)


def _centroid(vectors: list[np.ndarray]) -> np.ndarray | None:
    if not vectors:
        return None
    mean = np.mean(np.asarray(vectors, np.float32), axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None


def _overlapped(xyxy: np.ndarray, share: float = 0.3) -> np.ndarray:
    """Boxes of which another box covers more than ``share`` of the area (their crop shows someone else)."""
    n = len(xyxy)
    if n < 2:
        return np.zeros(n, bool)
    x0 = np.maximum(xyxy[:, None, 0], xyxy[None, :, 0])
    y0 = np.maximum(xyxy[:, None, 1], xyxy[None, :, 1])
    x1 = np.minimum(xyxy[:, None, 2], xyxy[None, :, 2])
    y1 = np.minimum(xyxy[:, None, 3], xyxy[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = np.maximum((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]), 1e-6)
    np.fill_diagonal(inter, 0)
    return (inter / area[:, None]).max(axis=1) > share


def encode_vector(vector: np.ndarray) -> str:
    """A unit vector as base64 of its float16 bytes (little-endian): 512 bytes for 256-d."""
    return base64.b64encode(np.asarray(vector, "<f2").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """The float32 unit vector of :func:`encode_vector`'s text."""
    vector = np.frombuffer(base64.b64decode(text), "<f2").astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _appearance_similarity(boxes: BaseIoU, processor: TrackingProcessor) -> BaseIoU:
    """ByteTrack's box similarity ``boxes``, with appearance blended into its first (high-score) stage where
    ambiguous. (Defined here: ``trackers`` is imported when tracking starts, not with this module.)"""
    from trackers.utils.iou import BaseIoU

    class AppearanceSimilarity(BaseIoU):
        def compute(self, boxes_1: np.ndarray, boxes_2: np.ndarray) -> np.ndarray:
            similarity = boxes.compute(boxes_1, boxes_2)
            processor._calls += 1
            if processor._calls == 1 and processor.appearance and processor.associate_weight > 0 and similarity.size:
                return processor._fuse(similarity)
            return similarity

        def _compute(self, boxes_1: np.ndarray, boxes_2: np.ndarray) -> np.ndarray:
            return self.compute(boxes_1, boxes_2)  # pragma: no cover - compute is overridden

    return AppearanceSimilarity()


class TrackingProcessor(FrameProcessor):
    """Tracks the boxes of one category (default ``Human``) with ByteTrack and re-links people by appearance;
    counts unique people and occupancy.

    Args:
        category: the detector category to track.
        high_score: boxes scoring at least this are ByteTrack's first-stage boxes and may start tracks (give the
            detector's ``min_detection_score``: the boxes the result file reports).
        low_score: weaker boxes down to this score are asked of the detector for ByteTrack's second stage (1 or
            more: none).
        activation_score: a box matching no track starts one when it scores at least this (default ``high_score``
            + 0.2, as ByteTrack's "new track" threshold sits above its high threshold).
        lost_track_s: seconds a ByteTrack track is kept without a matching box before it ends.
        min_iou: the least IoU between a track's predicted box and a box for them to match.
        buffer_per_s: boxes are matched with a buffered IoU (C-BIoU, Yang et al. 2023): grown on each side by this
            share of their size per second between analysed frames (0.1 at 10 analysed fps, 0.5 at 2), so that
            people who moved further than their own width between two analysed frames still match.
        confirm_frames: consecutive analysed frames with a match before a track is confirmed and numbered.
        min_track_s: a person counts when seen over at least this many seconds (first to last sighting).
        appearance: re-link lost people by appearance (needs ``embedder``, or builds the shipped one).
        relink_s: the longest gap, in seconds, across which two tracklets may be joined.
        link_threshold: cosine similarity of gallery means for an online re-link of a young tracklet.
        merge_threshold: the same for the merge pass at the end of the video.
        link_window_s: a new tracklet may be re-linked online during its first this many seconds.
        max_speed: body heights a second a person may have walked across a gap (plus one body height).
        gallery_size: appearance vectors kept per tracklet.
        embed_interval_s: seconds between two views of a tracklet while its gallery fills.
        refresh_s: seconds between two views of a tracklet whose gallery is full.
        max_embeds_per_frame: crops embedded at most per analysed frame (the neediest tracklets first).
        split_threshold: a clean view of a tracklet less similar than this to its gallery's mean (checked after
            every overlap and at every refresh) means ByteTrack went on with someone else: the tracklet is split
            (``None``: never; see docs/tracking.md for what it did on the development clips).
        associate_weight: blend appearance into ByteTrack's first-stage matching where it is ambiguous (0: off;
            ambiguous boxes are then embedded too).
        store_embeddings: put each person's mean appearance vector (float16, base64) in the result file.
        embedder: the appearance model (default: the shipped person ReID model, loaded on first use).
    """

    name = "tracking"
    frame_fields = {TRACK_ID: "track_ids"}  # noqa: RUF012

    def __init__(
        self,
        category: str = "Human",
        high_score: float = 0.4,
        low_score: float = 0.1,
        activation_score: float | None = None,
        lost_track_s: float = 1.5,
        min_iou: float = 0.3,
        buffer_per_s: float = 2.0,
        confirm_frames: int = 2,
        min_track_s: float = 1.0,
        appearance: bool = True,
        relink_s: float = 5.0,
        link_threshold: float = 0.8,
        merge_threshold: float = 0.75,
        link_window_s: float = 2.0,
        max_speed: float = 1.5,
        gallery_size: int = 4,
        embed_interval_s: float = 0.5,
        refresh_s: float = 4.0,
        max_embeds_per_frame: int = 8,
        split_threshold: float | None = None,
        associate_weight: float = 0.5,
        store_embeddings: bool = False,
        embedder: BoxEmbedder | None = None,
    ) -> None:
        self.category = category
        self.high_score = float(_number(high_score, "high_score"))
        self.low_score = float(_number(low_score, "low_score"))
        self.activation_score = (
            min(1.0, self.high_score + 0.2)
            if activation_score is None
            else float(_number(activation_score, "activation_score"))
        )
        self.lost_track_s = float(_number(lost_track_s, "lost_track_s"))
        self.min_iou = float(_number(min_iou, "min_iou"))
        self.buffer_per_s = float(_number(buffer_per_s, "buffer_per_s"))
        self.confirm_frames = int(_number(confirm_frames, "confirm_frames"))
        self.min_track_s = float(_number(min_track_s, "min_track_s"))
        if not isinstance(appearance, bool):
            raise ConfigError(f"tracking.appearance must be true or false, got {appearance!r}")
        self.appearance = appearance
        self.relink_s = float(_number(relink_s, "relink_s"))
        self.link_threshold = float(_number(link_threshold, "link_threshold"))
        self.merge_threshold = float(_number(merge_threshold, "merge_threshold"))
        self.link_window_s = float(_number(link_window_s, "link_window_s"))
        self.max_speed = float(_number(max_speed, "max_speed"))
        self.gallery_size = int(_number(gallery_size, "gallery_size"))
        self.embed_interval_s = float(_number(embed_interval_s, "embed_interval_s"))
        self.refresh_s = float(_number(refresh_s, "refresh_s"))
        self.max_embeds_per_frame = int(_number(max_embeds_per_frame, "max_embeds_per_frame"))
        self.associate_weight = float(_number(associate_weight, "associate_weight"))
        self.split_threshold = -2.0 if split_threshold is None else float(_number(split_threshold, "split_threshold"))
        if not isinstance(store_embeddings, bool):
            raise ConfigError(f"tracking.embeddings must be true or false, got {store_embeddings!r}")
        self.store_embeddings = store_embeddings
        self.embedder = embedder
        self.score_floors = {category: self.low_score} if self.low_score < self.high_score else {}
        self._tracker: Any = None
        self._biou: Any = None  # the tracker's buffered IoU (set by start)
        self._calls = 0
        self._frame_vectors: dict[int, np.ndarray] = {}
        self._image_now: Any = None
        self._boxes = np.zeros((0, 4), np.float32)
        self._scores = np.zeros(0, np.float32)
        self._reset()
        self._interval_s = 0.0

    def _reset(self) -> None:
        self._tracklets: dict[int, Tracklet] = {}  # the current tracklet of each ByteTrack id
        self._all: list[Tracklet] = []  # every tracklet, split ones included
        self._owner: dict[int, Tracklet] = {}  # segment id -> its tracklet
        self._parent: dict[int, int] = {}  # union-find of online identities
        self._next_identity = 1
        self._next_segment = 0
        self._present: list[list[int]] = []  # segments seen per analysed frame
        # the last confirm_frames - 1 frames: (frame, its boxes, their scores, rows no track held), where a new
        # track's first sightings (before ByteTrack confirmed it) are found again
        self._recent: list[tuple[FrameResult, np.ndarray, np.ndarray, set[int]]] = []
        self._frames: list[tuple[int, float]] = []
        self._results: list[FrameResult] = []
        self._final: list[Track] | None = None  # the people after the merge pass (set by finish)
        self._final_ids: dict[int, int] = {}  # online id -> the person's id in the result file (set by finish)
        self.embedded = 0  # crops embedded in this video
        # live: people forgotten once nobody can be re-linked to them any more (see _forget)
        self._forgotten_people = 0
        self._forgotten_identities = 0
        self._swept_ms = -1e18

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        info: dict[str, Any] = {
            "name": self.name,
            "tracker": f"ByteTrack (trackers {version('trackers')})" + (" + appearance" if self.appearance else ""),
            "category": self.category,
            "high_score": self.high_score,
            "low_score": self.low_score,
            "activation_score": self.activation_score,
            "lost_track_s": self.lost_track_s,
            "min_iou": self.min_iou,
            "buffer_per_s": self.buffer_per_s,
            "confirm_frames": self.confirm_frames,
            "min_track_s": self.min_track_s,
            "appearance": self.appearance,
        }
        if self.appearance:
            info.update(
                relink_s=self.relink_s,
                link_threshold=self.link_threshold,
                merge_threshold=self.merge_threshold,
                link_window_s=self.link_window_s,
                max_speed=self.max_speed,
                gallery_size=self.gallery_size,
                embed_interval_s=self.embed_interval_s,
                refresh_s=self.refresh_s,
                max_embeds_per_frame=self.max_embeds_per_frame,
                split_threshold=self.split_threshold if self.split_threshold > -2 else None,
                associate_weight=self.associate_weight,
                embedder=self._embedder().describe() if self.embedder is not None else "person-reid-0287",
            )
        return info

    def _embedder(self) -> BoxEmbedder:
        if self.embedder is None:
            from crowdcount.detectors.reid import build_person_embedder

            embedder: BoxEmbedder = build_person_embedder()
            self.embedder = embedder
            return embedder
        return self.embedder

    def start(self, video: VideoInfo, frame_ratio: float) -> None:
        from trackers import ByteTrackTracker
        from trackers.utils.iou import BIoU

        fps = video.fps if video.fps > 0 else 25.0
        analysed_fps = fps * frame_ratio
        self._interval_s = 1.0 / analysed_fps
        self._biou = BIoU(buffer_ratio=self.buffer_per_s / analysed_fps)  # matching, and finding first sightings
        # lost_track_buffer is counted in 30 fps frames; timestamps make the tracker budget it in seconds
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(0, round(self.lost_track_s * 30)),
            frame_rate=analysed_fps,
            track_activation_threshold=self.activation_score,
            minimum_consecutive_frames=self.confirm_frames,
            minimum_iou_threshold=self.min_iou,
            high_conf_det_threshold=self.high_score,
            iou=_appearance_similarity(self._biou, self),
        )
        self._reset()
        if self.appearance and (self.store_embeddings or self.embedder is None):
            self._embedder()

    # --- identities -------------------------------------------------------------------------------------------

    def _root(self, identity: int) -> int:
        parent = self._parent
        while parent[identity] != identity:
            parent[identity] = parent[parent[identity]]
            identity = parent[identity]
        return identity

    def _new_identity(self) -> int:
        identity = self._next_identity
        self._next_identity += 1
        self._parent[identity] = identity
        return identity

    def _members(self) -> dict[int, list[Tracklet]]:
        groups: dict[int, list[Tracklet]] = {}
        for tracklet in self._all:
            groups.setdefault(self._root(tracklet.identity), []).append(tracklet)
        for members in groups.values():
            members.sort(key=lambda t: t.first_ms)
        return groups

    def _reachable(self, before: Tracklet, after: Tracklet) -> bool:
        """``after`` starts after ``before`` ended, within ``relink_s``, near enough to be the same walker."""
        gap_s = (after.first_ms - before.last_ms) / 1000.0
        if gap_s <= 0 or gap_s > self.relink_s:
            return False
        x0, y0, h0 = _feet(before.last_box)
        x1, y1, h1 = _feet(after.first_box)
        height = (h0 + h1) / 2
        return float(np.hypot(x1 - x0, y1 - y0)) <= height * (self.max_speed * gap_s + 1.0)

    def _joinable(self, a: list[Tracklet], b: list[Tracklet]) -> bool:
        """Two groups of tracklets may be one person: never seen at once, every hand-over reachable."""
        merged = sorted(a + b, key=lambda t: t.first_ms)
        return all(self._reachable(p, q) for p, q in itertools.pairwise(merged))

    def _try_link(self, tracklet: Tracklet, now_ms: float, present: set[int]) -> None:
        """Re-link a young tracklet to a lost person whose appearance matches it clearly."""
        mine = _centroid(tracklet.gallery)
        if mine is None:
            return
        own = self._root(tracklet.identity)
        groups = self._members()
        if len(groups.get(own, [])) != 1:
            return  # already linked
        scores: list[tuple[float, int]] = []
        for root, members in groups.items():
            if root == own or root in present:
                continue
            last = members[-1]
            if not self._reachable(last, tracklet) or not self._joinable(members, [tracklet]):
                continue
            theirs = _centroid([v for t in members for v in t.gallery])
            if theirs is not None:
                scores.append((float(mine @ theirs), root))
        if not scores:
            return
        scores.sort(reverse=True)
        best, root = scores[0]
        runner_up = scores[1][0] if len(scores) > 1 else -1.0
        if best >= self.link_threshold and best - runner_up >= 0.05:
            self._parent[own] = root
            logger.debug("tracklet %d re-linked to person %d (cosine %.3f)", tracklet.key, root, best)

    # --- per frame ------------------------------------------------------------------------------------------

    def process(self, frame: FrameResult, image: np.ndarray) -> None:
        import supervision as sv

        dets = frame.detections.get(self.category)
        if dets is None:
            raise ConfigError(f"tracking: no detector reports category {self.category!r}")
        n = len(dets)
        candidates = sv.Detections(
            xyxy=dets.xyxy.astype(np.float32),
            confidence=dets.confidence.astype(np.float32),
            class_id=dets.class_id.astype(int),
            data={"index": np.arange(n)},
        )
        self._image_now, self._boxes, self._scores = image, dets.xyxy, dets.confidence
        self._frame_vectors = {}
        self._calls = 0
        tracked = self._tracker.update(candidates, timestamp=frame.timestamp_ms / 1000.0)
        keys = np.full(n, NO_TRACK, np.int64)
        if len(tracked):
            raw = np.asarray(tracked.tracker_id, np.int64)
            keys[np.asarray(tracked.data["index"], np.int64)] = np.where(raw >= 0, raw + 1, NO_TRACK)
        now = frame.timestamp_ms
        tracked_rows = np.flatnonzero(keys != NO_TRACK)
        covered = np.zeros(n, bool)
        covered[tracked_rows] = _overlapped(dets.xyxy[tracked_rows].astype(np.float32))
        segments = np.full(n, NO_TRACK, np.int64)
        for i in tracked_rows:
            key = int(keys[i])
            tracklet = self._tracklets.get(key)
            box = dets.xyxy[i].astype(np.float32)
            if tracklet is None:
                tracklet = Tracklet(key, [self._new_segment(frame.index, now, box)])
                tracklet.identity = self._new_identity()
                self._tracklets[key] = tracklet
                self._all.append(tracklet)
                self._backfill(tracklet.segments[0])
            elif covered[i] and not tracklet.covered:  # someone starts to cover it: a new segment
                tracklet.segments.append(self._new_segment(frame.index, now, box))
            else:
                segment = tracklet.segments[-1]
                segment.previous = (segment.last_frame, segment.last_ms, segment.last_box)
                segment.last_frame, segment.last_ms, segment.last_box = frame.index, now, box
                segment.frames += 1
            self._owner[tracklet.segments[-1].id] = tracklet
            tracklet.covered = bool(covered[i])
            tracklet.dirty = tracklet.dirty or tracklet.covered
            segments[i] = tracklet.segments[-1].id
        if self.appearance:
            self._embed_needed(dets, keys, covered, image, now)
            segments = np.array([self._tracklets[int(k)].segments[-1].id if k != NO_TRACK else NO_TRACK
                                 for k in keys], np.int64)  # fmt: skip
        ids = np.array(
            [self._root(self._owner[int(s)].identity) if s != NO_TRACK else NO_TRACK for s in segments], np.int64
        )
        frame.detections[self.category] = Detections(
            dets.xyxy, dets.confidence, dets.class_id, {**dets.data, TRACK_ID: ids, SEGMENT: segments}
        )
        seen = sorted({int(s) for s in segments if s != NO_TRACK})
        if self.confirm_frames > 1:
            untracked = {int(i) for i in np.flatnonzero(keys == NO_TRACK)}
            self._recent = [*self._recent, (frame, dets.xyxy, dets.confidence, untracked)][1 - self.confirm_frames :]
        if self.live:  # nothing kept for a result file; people nobody can be re-linked to any more are forgotten
            self._present = [seen]
            if now - self._swept_ms >= 1000.0:
                self._forget(now)
                self._swept_ms = now
            return
        self._present.append(seen)
        self._frames.append((frame.index, now))
        self._results.append(frame)

    def _backfill(self, segment: Segment) -> None:
        """Give a newly confirmed track the sightings ByteTrack held before confirming it (the frames before this
        one, where its boxes had no track): its first frame is when it was first seen, not confirmed. Each earlier
        box is the one no track held that overlaps the later box most (buffered IoU at least ``min_iou``, as the
        tracker matches), the first of them one that could start a track (``activation_score``)."""
        box = segment.first_box
        found: list[tuple[int, np.ndarray, int]] = []  # (index in _recent, box, row), latest first
        for j in range(len(self._recent) - 1, -1, -1):
            _, xyxy, _, untracked = self._recent[j]
            rows = sorted(untracked)
            if not rows:
                break
            similarity = self._biou.compute(box[None], xyxy[rows].astype(np.float32))[0]
            best = int(np.argmax(similarity))
            if similarity[best] < self.min_iou:
                break
            box = xyxy[rows[best]].astype(np.float32)
            found.append((j, box, rows[best]))
        if len(found) < self.confirm_frames - 1:
            return
        first, box, row = found[-1]
        if float(self._recent[first][2][row]) < self.activation_score:
            return
        for j, box, row in found:
            frame, _, _, untracked = self._recent[j]
            untracked.discard(row)
            dets = frame.detections.get(self.category)
            if dets is not None and SEGMENT in dets.data:  # its weak boxes may be gone: find the box again
                (matches,) = np.nonzero(np.all(dets.xyxy == box, axis=1))
                if len(matches):
                    dets.data[SEGMENT][matches[0]] = segment.id
            if not self.live:
                present = self._present[len(self._present) - len(self._recent) + j]
                present.append(segment.id)
                present.sort()
        frame = self._recent[first][0]
        segment.first_frame, segment.first_ms, segment.first_box = frame.index, frame.timestamp_ms, box
        segment.frames += len(found)

    def _forget(self, now_ms: float) -> None:
        """Live: drop the people last seen longer ago than any re-link or lost track can reach back (counting
        those seen over ``min_track_s``), so that memory and the re-link search stay the size of the scene."""
        horizon_ms = (max(self.relink_s, self.lost_track_s) + 1.0) * 1000.0 + 2 * self._interval_s * 1000.0
        gone = {
            root: members
            for root, members in self._members().items()
            if now_ms - max(t.last_ms for t in members) > horizon_ms
        }
        if not gone:
            return
        for members in gone.values():
            self._forgotten_people += self._is_person(members)
            self._forgotten_identities += 1
            for tracklet in members:
                for segment in tracklet.segments:
                    self._owner.pop(segment.id, None)
                if self._tracklets.get(tracklet.key) is tracklet:
                    del self._tracklets[tracklet.key]
        dropped = {id(t) for members in gone.values() for t in members}
        self._all = [t for t in self._all if id(t) not in dropped]
        roots = {identity: self._root(identity) for identity in self._parent}
        self._parent = {i: parent for i, parent in self._parent.items() if roots[i] not in gone}

    def _new_segment(self, index: int, now: float, box: np.ndarray) -> Segment:
        self._next_segment += 1
        return Segment(self._next_segment, index, now, box, index, now, box)

    def _embed_needed(
        self, dets: Detections, keys: np.ndarray, covered: np.ndarray, image: np.ndarray, now: float
    ) -> None:
        """Embed the boxes of the tracklets that need a view now: new ones, ones seen clearly again after an
        overlap (did ByteTrack swap people?), galleries filling, stale galleries. Splits swapped tracklets and
        re-links young ones."""
        weak = dets.data.get(BELOW_THRESHOLD)
        strong = np.ones(len(dets), bool) if weak is None else ~np.asarray(weak, bool)
        wanted: list[tuple[float, int]] = []
        for i in np.flatnonzero((keys != NO_TRACK) & strong):
            tracklet = self._tracklets[int(keys[i])]
            since = (now - tracklet.last_embed_ms) / 1000.0
            if covered[i]:
                # a new tracklet overlapped by someone waits a little for a clean view
                if tracklet.gallery or (now - tracklet.first_ms) / 1000.0 < self.embed_interval_s:
                    continue
                priority = 0.5
            elif not tracklet.gallery:
                priority = 0.0
            elif tracklet.dirty:
                priority = 1.0
            elif len(tracklet.gallery) < self.gallery_size and since >= self.embed_interval_s - 1e-6:
                priority = 2.0
            elif since >= self.refresh_s - 1e-6:
                priority = 3.0
            else:
                continue
            wanted.append((priority, int(i)))
        if not wanted:
            return
        wanted.sort()
        rows = [i for _, i in wanted[: self.max_embeds_per_frame]]
        vectors = self._vectors(rows)
        for row, vector in zip(rows, vectors, strict=True):
            tracklet = self._tracklets[int(keys[row])]
            vector = np.asarray(vector, np.float32)
            mean = _centroid(tracklet.gallery)
            if not covered[row]:
                if mean is not None and float(vector @ mean) < self.split_threshold:
                    tracklet = self._split(tracklet, now)
                tracklet.clean_ms = now
                tracklet.dirty = False
            tracklet.add(vector, self.gallery_size, now)
        present = {self._root(self._tracklets[int(k)].identity) for k in keys if k != NO_TRACK}
        for row in rows:
            tracklet = self._tracklets[int(keys[row])]
            if (now - tracklet.first_ms) / 1000.0 < self.link_window_s:
                self._try_link(tracklet, now, present - {self._root(tracklet.identity)})

    def _vectors(self, rows: list[int]) -> np.ndarray:
        """Vectors of this frame's boxes ``rows``: embedded once a frame (batched), reused after."""
        missing = [r for r in rows if r not in self._frame_vectors]
        if missing:
            vectors = self._embedder().embed_boxes(self._image_now, self._boxes[missing])
            self.embedded += len(missing)
            self._frame_vectors.update(zip(missing, np.asarray(vectors, np.float32), strict=True))
        return np.array([self._frame_vectors[r] for r in rows], np.float32).reshape(len(rows), -1)

    def _fuse(self, similarity: np.ndarray) -> np.ndarray:
        """ByteTrack's first-stage box similarity with appearance blended in where it is ambiguous: a confirmed
        track with a gallery that could take two boxes, or a box two tracks could take. Each such pair moves by
        ``associate_weight`` x (cosine - 0.5), never below the IoU threshold (appearance re-ranks the
        candidates the boxes allow; it never makes a pair valid or invalid)."""
        tracks = self._tracker.tracks
        valid = similarity >= self.min_iou
        if not valid.any():
            return similarity
        crowded = (valid.sum(axis=1, keepdims=True) >= 2) | (valid.sum(axis=0, keepdims=True) >= 2)
        means: dict[int, np.ndarray] = {}
        for row, track in enumerate(tracks):
            tracklet = self._tracklets.get(int(track.tracker_id) + 1) if track.tracker_id >= 0 else None
            mean = _centroid(tracklet.gallery) if tracklet is not None else None
            if mean is not None and (valid[row] & crowded[row]).any():
                means[row] = mean
        if not means:
            return similarity
        high = np.flatnonzero(self._scores >= self.high_score)
        columns = sorted({int(c) for row in means for c in np.flatnonzero(valid[row] & crowded[row])})
        vectors = dict(zip(columns, self._vectors([int(high[c]) for c in columns]), strict=True))
        fused = similarity.copy()
        for row, mean in means.items():
            for column in np.flatnonzero(valid[row] & crowded[row]):
                shifted = similarity[row, column] + self.associate_weight * (float(vectors[int(column)] @ mean) - 0.5)
                fused[row, column] = max(self.min_iou, shifted)
        return fused

    def _split(self, tracklet: Tracklet, now: float) -> Tracklet:
        """ByteTrack went on with someone else: the segments since the tracklet's last clean view (or, without
        one, the current sighting) become a new tracklet, a new person until re-linked or merged."""
        moved = [s for s in tracklet.segments[1:] if s.first_ms > tracklet.clean_ms]
        if not moved:
            last = tracklet.segments[-1]
            if last.previous is None:
                return tracklet
            # the current sighting alone starts the new tracklet; the previous one ends the old
            moved = [self._new_segment(last.last_frame, last.last_ms, last.last_box)]
            last.frames -= 1
            last.last_frame, last.last_ms, last.last_box = last.previous
            last.previous = None
        else:
            tracklet.segments = [s for s in tracklet.segments if s not in moved]
        new = Tracklet(tracklet.key, moved, covered=tracklet.covered)
        new.identity = self._new_identity()
        for segment in moved:
            self._owner[segment.id] = new
        self._tracklets[tracklet.key] = new
        self._all.append(new)
        logger.debug("tracklet %d split at frame %d (appearance changed)", tracklet.key, new.first_frame)
        return new

    # --- end of video ----------------------------------------------------------------------------------------

    def _merge_pass(self) -> None:
        """Join the groups of tracklets of one person, most similar first (greedy, constrained)."""
        groups = self._members()
        roots = [r for r, members in groups.items() if any(t.gallery for t in members)]
        if len(roots) < 2:
            return
        members = {r: groups[r] for r in roots}

        def mean(group: list[Tracklet]) -> np.ndarray:
            vectors = [v for t in group for v in t.gallery]
            centroid = _centroid(vectors)  # None only for vectors that cancel out: like nobody
            return centroid if centroid is not None else np.zeros_like(vectors[0], np.float32)

        means = {r: mean(members[r]) for r in roots}
        while True:
            order = list(members)
            matrix = np.stack([means[r] for r in order])
            sims = matrix @ matrix.T
            np.fill_diagonal(sims, -2.0)
            pairs = np.argwhere(np.triu(sims >= self.merge_threshold, 1))
            if not len(pairs):
                return
            ranked = sorted(((float(sims[i, j]), int(i), int(j)) for i, j in pairs), reverse=True)
            for sim, i, j in ranked:
                a, b = order[i], order[j]
                if self._joinable(members[a], members[b]):
                    keep, gone = (a, b) if members[a][0].first_ms <= members[b][0].first_ms else (b, a)
                    self._parent[gone] = keep
                    members[keep] = sorted(members[keep] + members.pop(gone), key=lambda t: t.first_ms)
                    means[keep] = mean(members[keep])
                    del means[gone]
                    logger.debug("merged person %d into %d (cosine %.3f)", gone, keep, sim)
                    break
            else:
                return

    def finish(self) -> dict[str, Any]:
        if self.appearance:
            self._merge_pass()
        groups = self._members()
        # people numbered 1, 2, 3... in order of appearance; every online id maps to its person's number
        order = sorted(groups, key=lambda r: (groups[r][0].first_ms, r))
        number = {root: n for n, root in enumerate(order, 1)}
        final = {segment: number[self._root(owner.identity)] for segment, owner in self._owner.items()}
        self._final_ids = {identity: number[self._root(identity)] for identity in self._parent}
        for result in self._results:
            dets = result.detections.get(self.category)
            if dets is not None and SEGMENT in dets.data:
                ids = dets.data[TRACK_ID]
                ids[:] = [final[int(s)] if s != NO_TRACK else NO_TRACK for s in dets.data.pop(SEGMENT)]
        tracks: list[Track] = []
        for root in order:
            members = groups[root]
            vectors = [v for t in members for v in t.gallery]
            tracks.append(
                Track(
                    number[root],
                    members[0].first_frame,
                    members[0].first_ms,
                    max(t.last_frame for t in members),
                    max(t.last_ms for t in members),
                    sum(t.frames for t in members),
                    sum((t.last_ms - t.first_ms) / 1000.0 + self._interval_s for t in members),
                    len(members),
                    _centroid(vectors),
                )
            )
        self._final = tracks
        people = self.people()
        counted = {t.track_id for t in people}
        present = [{final[i] for i in ids} for ids in self._present]
        occupancy = np.array([len(ids & counted) for ids in present], np.int64)
        peak = int(np.argmax(occupancy)) if len(occupancy) and occupancy.max() > 0 else None
        section: dict[str, Any] = {
            "unique_people": len(people),
            "confirmed_tracks": len({t.key for t in self._all}),
            "max_occupancy": int(occupancy.max()) if len(occupancy) else 0,
            "mean_occupancy": round(float(occupancy.mean()), 3) if len(occupancy) else 0.0,
            "peak_frame_index": None if peak is None else self._frames[peak][0],
            "people": [self._person(t) for t in people],
            "per_frame": {"occupancy": occupancy.tolist()},
        }
        if self.appearance:
            section["appearance"] = {
                "crops_embedded": self.embedded,
                "tracklets": len(self._all),
                "splits": len(self._all) - len(self._tracklets),
                "people_before_min_track_s": len(tracks),
            }
            if self.store_embeddings:
                embedder = self._embedder()
                section["embeddings"] = {"model": embedder.name, "dim": embedder.dim, "encoding": "base64 float16"}
        self._results = []
        return section

    def _person(self, track: Track) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "track_id": track.track_id,
            "first_frame": track.first_frame,
            "last_frame": track.last_frame,
            "first_s": round(track.first_ms / 1000.0, 3),
            "last_s": round(track.last_ms / 1000.0, 3),
            "present_s": round(track.present_s, 3),
            "frames_seen": track.frames,
            "tracklets": track.tracklets,
        }
        if self.store_embeddings and track.embedding is not None:
            entry["embedding"] = encode_vector(track.embedding)
        return entry

    def people(self) -> list[Track]:
        """The people seen over at least ``min_track_s`` (after :meth:`finish`: with the merge pass), by id."""
        if self._final is not None:
            tracks = self._final
        else:
            tracks = [Track(t.key, t.first_frame, t.first_ms, t.last_frame, t.last_ms, t.frames) for t in self._all]
        return [t for t in sorted(tracks, key=lambda t: t.track_id) if t.duration_s() >= self.min_track_s - 1e-9]

    def live_count(self) -> int:
        """Confirmed tracks seen in the last frame processed."""
        return len(self._present[-1]) if self._present else 0

    def tracks_so_far(self) -> int:
        """People (online identities, after re-linking) since the video started (before the ``min_track_s`` rule)."""
        return len({self._root(i) for i in self._parent}) + self._forgotten_identities

    def final_id(self, online_id: int) -> int:
        """After :meth:`finish`: the result file's id of the person a box had ``online_id`` for while the video
        ran (what lines, zones and the annotated video saw); ``online_id`` itself before."""
        return self._final_ids.get(online_id, online_id)

    def unique_people(self) -> int:
        """People seen over at least ``min_track_s`` so far: after :meth:`finish`, those of the result file;
        before it (and live), the online identities (tracklets re-linked so far count once)."""
        if self._final is not None:
            return len(self.people())
        return self._forgotten_people + sum(self._is_person(members) for members in self._members().values())

    def _is_person(self, members: list[Tracklet]) -> bool:
        """Whether the tracklets of one online identity (first seen first) span ``min_track_s``, as
        :meth:`people` requires of a person."""
        return (max(t.last_ms for t in members) - members[0].first_ms) / 1000.0 >= self.min_track_s - 1e-9


def reported(dets: Detections) -> np.ndarray:
    """Mask of the boxes a result file reports (not marked under their detector's threshold)."""
    weak = dets.data.get(BELOW_THRESHOLD)
    return np.ones(len(dets), bool) if weak is None else ~np.asarray(weak, bool)
