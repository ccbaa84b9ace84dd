"""Find a person in footage from photos (``crowdcount find``): the photos' appearance vector against every
tracked person's vector in result files, analysing the videos that have none.

A query photo gives one crop: the largest person the detector finds in it, or the whole photo when it is a
tight crop of one person (taller than wide, and the detector finds nobody or a person filling most of it). The
query's vector is the mean of the crops' vectors and their mirror images' (flip test-time augmentation), under
the model that embedded the searched vectors (a result file names it: ``tracking.embeddings.model``; vectors of
two models are not comparable). A tracked person's vector is the mean of their track's gallery
(``tracking.people[].embedding`` in a result file written with ``--embeddings``). Similarity is the cosine of
the two; matches are the people at or above the threshold, best first, less those that cannot be the person:
one person is in one place at a time, so within a video a track seen mostly while a better match is on screen
is a look-alike (:func:`one_at_a_time`).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.analyzer.tracking import decode_vector
from crowdcount.detectors import Detector
from crowdcount.errors import CrowdcountError

logger = logging.getLogger(__name__)

#: A photo at least this much taller than wide may be a tight crop of one person.
CROP_ASPECT = 1.5
#: A detected person covering at least this share of a tall photo: the photo is the crop.
CROP_FILL = 0.5
#: A photo whose pixels vary less than this (standard deviation, 0-255) is blank: one colour, no person.
BLANK_STD = 2.0


class SearchError(CrowdcountError):
    """A query photo or a source that cannot be searched (no person, unreadable, no tracks)."""

    exit_code = 1


@dataclass
class QueryPhoto:
    """One query photo: where the person is in it (pixels; the whole photo for a tight crop), its crop (RGB
    ``(256, 128, 3)``, as the person embedders take it) and the crop's vector under the embedder that found it."""

    path: str
    box: list[float]
    whole_photo: bool
    vector: np.ndarray
    crop: np.ndarray | None = None


def embed_query_crops(embedder: Any, crops: np.ndarray, flip: bool = True) -> np.ndarray:
    """The unit mean vector of person crops (``(N, 256, 128, 3)`` RGB) and, with ``flip``, their mirror images."""
    crops = np.asarray(crops, np.uint8)
    vectors = np.asarray(embedder.embed_crops(crops), np.float32)
    if flip:
        vectors = np.concatenate([vectors, np.asarray(embedder.embed_crops(crops[:, :, ::-1]), np.float32)])
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


class QueryVectors:
    """The query photos' vector under each person embedder a source needs, embedded on first need.

    Args:
        photos: the query photos (with their crops).
        flip: average each crop with its mirror image.
        build: person embedder by name (default :func:`crowdcount.detectors.reid.build_person_embedder`).
    """

    def __init__(
        self, photos: Sequence[QueryPhoto], flip: bool = True, build: Callable[[str], Any] | None = None
    ) -> None:
        if build is None:
            from crowdcount.detectors.reid import build_person_embedder

            build = build_person_embedder
        self.photos, self.flip, self._build = list(photos), flip, build
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, model: str) -> np.ndarray:
        if model not in self._vectors:
            crops = np.stack([p.crop for p in self.photos if p.crop is not None])
            self._vectors[model] = embed_query_crops(self._build(model), crops, self.flip)
        return self._vectors[model]


def read_photo(path: str | Path) -> np.ndarray:
    """A photo as RGB ``uint8`` (:class:`SearchError` when it is missing or not an image)."""
    import cv2

    path = Path(path)
    if path.is_dir():
        raise SearchError(f"photo {str(path)!r} is a folder", "give the photos themselves (e.g. folder/*.jpg)")
    if not path.is_file():
        raise SearchError(f"photo {str(path)!r} does not exist", "give the path of a JPEG or PNG photo")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise SearchError(f"photo {str(path)!r} cannot be read as an image", "give a JPEG, PNG or BMP photo")
    return np.ascontiguousarray(image[..., ::-1])


def person_box(rgb: np.ndarray, detector: Detector, source: str) -> tuple[np.ndarray, bool]:
    """The box of the person in a photo (``xyxy`` pixels) and whether it is the whole photo."""
    height, width = rgb.shape[:2]
    no_person = SearchError(
        f"no person found in photo {source!r}",
        "give a photo showing the person, or a tight crop of them (taller than wide)",
    )
    if float(rgb.std()) < BLANK_STD:  # one colour shows no one, whatever a detector makes of it
        raise no_person
    (found,) = detector.detect([rgb])
    whole = np.array([0, 0, width, height], np.float32)
    tall = height >= CROP_ASPECT * width
    if len(found):
        areas = (found.xyxy[:, 2] - found.xyxy[:, 0]) * (found.xyxy[:, 3] - found.xyxy[:, 1])
        best = found.xyxy[int(np.argmax(areas))]
        if tall and float(areas.max()) >= CROP_FILL * width * height:
            return whole, True
        return best.astype(np.float32), False
    if tall:  # a tight crop shows someone (a blank one was refused above)
        return whole, True
    raise no_person


def embed_photos(paths: Sequence[str | Path], detector: Detector, embedder: Any) -> list[QueryPhoto]:
    """Read every photo, find its person, embed them (all photos are checked before any video is touched)."""
    photos = [(str(p), read_photo(p)) for p in paths]
    from crowdcount.detectors.reid import crop_people

    out = []
    for path, rgb in photos:
        box, whole = person_box(rgb, detector, path)
        crop = crop_people(rgb, box[None])
        vector = embedder.embed_crops(crop)[0]
        out.append(QueryPhoto(path, [round(float(v), 1) for v in box], whole, np.asarray(vector, np.float32), crop[0]))
    return out


@dataclass
class Match:
    """A tracked person whose appearance matches the query."""

    video: str
    track_id: int
    similarity: float
    first_s: float
    last_s: float
    frames: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    video_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "track_id": self.track_id,
            "similarity": round(self.similarity, 4),
            "first_s": self.first_s,
            "last_s": self.last_s,
            "frames": self.frames,
        }


#: A track of one video whose frames are more than this share shared with better matches (one person is in one
#: place at a time) is not the query's person; up to it, its shared frames go to the better match (a hand-off, a
#: tracker swap) and it keeps the rest.
OVERLAP_TOLERANCE = 0.2


def one_at_a_time(
    scores: Mapping[int, float],
    frames: Mapping[int, Collection[int]],
    threshold: float,
    tolerance: float = OVERLAP_TOLERANCE,
) -> dict[int, set[int]]:
    """The tracks of one video that can be the query's person and the frames in which they are, best first:
    the tracks at or above ``threshold`` by similarity (``scores``), each taken unless more than ``tolerance`` of
    its frames (``frames``: analysed frame indexes by track) are frames of the better tracks already taken, and
    then without those frames. A track without frames is taken as it is."""
    taken: set[int] = set()
    out: dict[int, set[int]] = {}
    for track in sorted((t for t, s in scores.items() if s >= threshold), key=lambda t: (-scores[t], t)):
        mine = set(frames.get(track, ()))
        shared = mine & taken
        if mine and len(shared) > tolerance * len(mine):
            logger.debug("track %s: %d of its %d frames are a better match's: not the person", track, len(shared),
                         len(mine))  # fmt: skip
            continue
        out[track] = mine - shared
        taken |= mine
    return out


def people_vectors(document: dict[str, Any], source: str) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Each tracked person of a result document with their appearance vector (:class:`SearchError` when the
    document has no tracks or no stored vectors). A person without one (followed only through boxes under the
    detector's threshold, which are never embedded) cannot be matched and is left out."""
    tracking = document.get("tracking")
    if not isinstance(tracking, dict):
        raise SearchError(f"{source}: no tracks (analysed with --no-track)", "analyse it again with tracking on")
    people = tracking.get("people") or []
    if not people:
        raise SearchError(f"{source}: no people were tracked in this video", "nothing to search in it")
    if "embeddings" not in tracking or not any("embedding" in p for p in people):
        raise SearchError(
            f"{source}: the result file holds no appearance vectors",
            "analyse the video again with 'crowdcount analyze --embeddings', or pass the video itself",
        )
    try:
        return [(p, decode_vector(p["embedding"])) for p in people if "embedding" in p]
    except (TypeError, ValueError) as exc:  # not base64, or not float16 values
        raise damaged(source, exc) from None


def check_people(people: Sequence[tuple[dict[str, Any], np.ndarray]]) -> None:
    """``ValueError`` when a track is listed twice (its vector and frames would be another's, or match twice),
    or has times or a vector that are not numbers (a NaN similarity matches nothing; NaN times are no JSON)."""
    seen: set[int] = set()
    for p, vector in people:
        track = int(p["track_id"])
        if track in seen:
            raise ValueError(f"track {track} is listed twice")
        seen.add(track)
        if not (math.isfinite(float(p["first_s"])) and math.isfinite(float(p["last_s"]))):
            raise ValueError(f"track {track} has times that are not numbers")
        if not np.isfinite(vector).all():
            raise ValueError(f"track {track} has a vector that is not numbers")


def _is_box(box: Any) -> bool:
    """Whether ``box`` is 4 finite numbers (``[ymin, xmin, ymax, xmax]``, as a result file holds them)."""
    return (
        isinstance(box, list | tuple)
        and len(box) == 4
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    )


def damaged(source: str, exc: Exception) -> SearchError:
    """The error of a result document whose contents are not what ``crowdcount analyze`` writes."""
    return SearchError(
        f"{source}: a damaged result file ({type(exc).__name__}: {exc})",
        "analyse the video again with 'crowdcount analyze --embeddings', or pass the video itself",
    )


def stored_model(document: dict[str, Any]) -> str:
    """The person embedder that embedded a result document's stored vectors."""
    from crowdcount.detectors.reid import DEFAULT_PERSON_EMBEDDER

    embeddings = (document.get("tracking") or {}).get("embeddings") or {}
    return str(embeddings.get("model") or DEFAULT_PERSON_EMBEDDER)


def search_document(
    document: dict[str, Any],
    query: np.ndarray | Callable[[str], np.ndarray],
    threshold: float,
    source: str,
    category: str = "Human",
) -> list[Match]:
    """The people of one result document at or above ``threshold``, best first, with their frames and boxes,
    less those that cannot be the query's person (:func:`one_at_a_time`: seen while a better match is elsewhere).
    ``query``: a vector, or the query's vector by model name (:class:`QueryVectors`: the document's model)."""
    people = people_vectors(document, source)
    if callable(query):
        model = stored_model(document)
        try:
            query = query(model)
        except CrowdcountError as exc:
            raise SearchError(f"{source}: its vectors come from {model!r}, which cannot be used: {exc}") from None
    try:  # a field missing or of the wrong type, vectors of another length: a damaged file, not a bug
        check_people(people)
        scores = {int(p["track_id"]): float(vector @ query) for p, vector in people}
        frames: dict[int, list[dict[str, Any]]] = {t: [] for t, s in scores.items() if s >= threshold}
        for frame in document.get("frames", []):
            entry = frame.get(category) or {}
            for box, track_id in zip(entry.get("boxes", []), entry.get("track_ids", []), strict=False):
                if track_id in frames:
                    index = int(frame["frame_index"])
                    if not _is_box(box):  # a contact sheet crops it; the matches file gives it on
                        raise ValueError(f"frame {index} has a box that is not 4 numbers: {box!r}")
                    frames[track_id].append({"frame_index": index, "box": box})
        # one person is in one place at a time: a look-alike seen while a better match is elsewhere is not them
        kept = one_at_a_time(
            {t: scores[t] for t in frames}, {t: [f["frame_index"] for f in v] for t, v in frames.items()}, threshold
        )
        video = document.get("video") or {}
        name = str(video.get("name") or Path(source).name)
        matches = [
            Match(
                name,
                int(p["track_id"]),
                scores[int(p["track_id"])],
                float(p["first_s"]),
                float(p["last_s"]),
                [f for f in frames[int(p["track_id"])] if f["frame_index"] in kept[int(p["track_id"])]],
                source,
                str(video.get("path") or ""),
            )
            for p, _ in people
            if int(p["track_id"]) in kept
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise damaged(source, exc) from None
    return sorted(matches, key=lambda m: -m.similarity)


#: Contact sheets: each view's size, the header's height, and the least width (room for the header's text).
TILE = (96, 192)
HEADER = 40
MIN_SHEET_WIDTH = 4 * TILE[0]


def contact_sheet(match: Match, path: Path, tiles: int = 8) -> Path | None:
    """A PNG of up to ``tiles`` views of a match, evenly spread over its frames, each marked with its time into
    the video, under a header naming the video, the person's track, the similarity and when they were seen
    (``None`` when its video cannot be read; :class:`OSError` when the PNG cannot be written)."""
    import cv2

    from crowdcount.analyzer.video import open_capture, usable_fps

    if not match.video_path or not Path(match.video_path).exists() or not match.frames:
        return None
    picks = [match.frames[int(i)] for i in np.linspace(0, len(match.frames) - 1, min(tiles, len(match.frames)))]
    wanted = {p["frame_index"]: p["box"] for p in picks}
    capture = open_capture(match.video_path)
    fps = usable_fps(float(capture.get(cv2.CAP_PROP_FPS) or 0.0))  # unknown (0): tiles say "frame N"
    crops: list[np.ndarray] = []
    index = 0
    while wanted and len(crops) < len(picks):
        ok, frame = capture.read()
        if not ok:
            break
        index += 1
        box = wanted.pop(index, None)
        if box is None:
            continue
        height, width = frame.shape[:2]
        y0, x0, y1, x1 = (round(v * s) for v, s in zip(box, (height, width, height, width), strict=True))
        y0, x0 = min(max(0, y0), height - 1), min(max(0, x0), width - 1)  # a box flat against the far edge: 1 px
        crop = frame[y0 : max(y0 + 1, y1), x0 : max(x0 + 1, x1)]
        tile = cv2.resize(crop, TILE)
        when = f"{(index - 1) / fps:.1f} s" if fps > 0 else f"frame {index}"
        cv2.rectangle(tile, (0, 0), (TILE[0] - 1, 17), (0, 0, 0), -1)
        cv2.putText(tile, when, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1, cv2.LINE_AA)
        crops.append(tile)
    capture.release()
    if not crops:
        return None
    views = np.hstack(crops)
    sheet = np.full((HEADER + TILE[1], max(MIN_SHEET_WIDTH, views.shape[1]), 3), 32, np.uint8)
    sheet[HEADER:, : views.shape[1]] = views
    name = match.video if len(match.video) <= 40 else match.video[:37] + "..."
    for row, text in enumerate(
        (
            f"{name}, person #{match.track_id}",
            f"similarity {match.similarity:.2f}, seen {match.first_s:.1f}-{match.last_s:.1f} s",
        )
    ):
        cv2.putText(sheet, text, (4, 15 + 18 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):  # a name too long, a full disk: not the video's fault
        raise OSError(f"cannot write {str(path)!r}")
    return path
