"""Ground truth: MOTChallenge ``gt.txt`` files (videos) and dlib imglab XML files (images), plus ignore regions.

Boxes are held as ``[x_min, y_min, x_max, y_max]`` pixels of the media being evaluated, with an ``ignore``
flag per box: an ignored box is neither found nor missed, and a detection matching it is neither right nor
wrong (MOTChallenge rows with ``conf`` 0, imglab boxes with ``ignore='1'``, boxes in ignore regions).
"""

from __future__ import annotations

import configparser
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

#: Common video resolutions, tried (smallest first, same aspect ratio) when a MOTChallenge file's boxes do not
#: fit the video and neither a scale nor the annotation size was given.
STANDARD_SIZES: tuple[tuple[int, int], ...] = (
    (320, 240),
    (352, 288),
    (384, 288),
    (480, 360),
    (640, 360),
    (640, 480),
    (704, 576),
    (720, 480),
    (720, 576),
    (768, 576),
    (800, 600),
    (854, 480),
    (960, 540),
    (1024, 576),
    (1024, 768),
    (1280, 720),
    (1280, 960),
    (1280, 1024),
    (1600, 1200),
    (1920, 1080),
    (2560, 1440),
    (3840, 2160),
)


@dataclass(frozen=True)
class GroundTruthFrame:
    """The annotated boxes of one frame or image: ``xyxy`` ``(N, 4)`` pixels, an ``ignore`` ``(N,)`` mask and,
    for MOTChallenge files, the person ``ids`` ``(N,)`` (``None`` for imglab XML)."""

    xyxy: np.ndarray
    ignore: np.ndarray
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        ignore = np.asarray(self.ignore, bool).reshape(-1)
        if len(ignore) != len(xyxy):
            raise ValueError(f"ground truth has {len(xyxy)} boxes but {len(ignore)} ignore flags")
        if self.ids is not None:
            ids = np.asarray(self.ids, np.int64).reshape(-1)
            if len(ids) != len(xyxy):
                raise ValueError(f"ground truth has {len(xyxy)} boxes but {len(ids)} ids")
            object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "ignore", ignore)

    @classmethod
    def empty(cls) -> GroundTruthFrame:
        """A frame with nobody in it."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, bool))

    @property
    def count(self) -> int:
        """The number of people (boxes not ignored)."""
        return int((~self.ignore).sum())

    def __len__(self) -> int:
        return len(self.xyxy)


@dataclass
class GroundTruth:
    """Annotated frames (1-based frame index -> boxes) or images (path -> boxes).

    Attributes:
        frames: the annotations; for a video every frame from 1 (or ``first``) to ``last`` is annotated, a
            frame without rows holding nobody.
        source: the file read.
        scale: the factor applied to the file's pixel coordinates.
        scale_reason: how that factor was decided (given, seqinfo.ini, inferred, none).
        width, height: the media size the boxes are in (0 when unknown).
    """

    frames: dict[int | str, GroundTruthFrame]
    source: str
    scale: float = 1.0
    scale_reason: str = "none"
    width: int = 0
    height: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[int | str]:
        return list(self.frames)

    @property
    def total(self) -> int:
        """People annotated in all frames (ignored boxes excluded)."""
        return sum(f.count for f in self.frames.values())


@dataclass(frozen=True)
class IgnoreRegion:
    """A rectangle in media pixels; a box whose bottom-centre point (a person's feet) lies inside is ignored."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @classmethod
    def parse(cls, text: str) -> IgnoreRegion:
        """Parse ``x_min,y_min,x_max,y_max`` (pixels of the media)."""
        try:
            values = [float(v) for v in text.replace(" ", "").split(",")]
        except ValueError:
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"ignore region {text!r} is not x_min,y_min,x_max,y_max", "e.g. --ignore 0,0,480,70")
        x0, y0, x1, y1 = values
        if x1 <= x0 or y1 <= y0:
            raise ConfigError(f"ignore region {text!r} is empty: x_max must exceed x_min and y_max y_min")
        return cls(x0, y0, x1, y1)

    def contains_feet(self, xyxy: np.ndarray) -> np.ndarray:
        """Which of the boxes ``(N, 4)`` have their bottom-centre point inside this region."""
        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        fx = (xyxy[:, 0] + xyxy[:, 2]) / 2
        fy = xyxy[:, 3]
        return (fx >= self.x_min) & (fx <= self.x_max) & (fy >= self.y_min) & (fy <= self.y_max)

    def __str__(self) -> str:
        return f"{self.x_min:g},{self.y_min:g},{self.x_max:g},{self.y_max:g}"


def in_ignore_regions(xyxy: np.ndarray, regions: Sequence[IgnoreRegion]) -> np.ndarray:
    """Mask of the boxes whose bottom-centre point lies in any of ``regions``."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    mask = np.zeros(len(xyxy), bool)
    for region in regions:
        mask |= region.contains_feet(xyxy)
    return mask


def apply_ignore_regions(gt: GroundTruth, regions: Sequence[IgnoreRegion]) -> GroundTruth:
    """A copy of ``gt`` with the boxes in ``regions`` flagged as ignored."""
    if not regions:
        return gt
    frames = {
        key: GroundTruthFrame(f.xyxy, f.ignore | in_ignore_regions(f.xyxy, regions), f.ids)
        for key, f in gt.frames.items()
    }
    return GroundTruth(frames, gt.source, gt.scale, gt.scale_reason, gt.width, gt.height, list(gt.warnings))


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (e.g. ``768x576``)."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = (0, 0)
    if not sep or size[0] <= 0 or size[1] <= 0:
        raise ConfigError(f"size {text!r} is not WIDTHxHEIGHT", "e.g. --gt-size 768x576")
    return size


def _sequence_numbers(gt_path: Path, *keys: str, warn: bool = False) -> tuple[int, ...] | None:
    """The integers ``keys`` of the ``[Sequence]`` of a MOTChallenge ``seqinfo.ini`` beside the ground truth
    (``SEQ/seqinfo.ini`` beside ``SEQ/gt/gt.txt``, or beside ``gt.txt``): the first such file that has them all
    (with ``warn``, a file that has not is said); ``None`` when none has."""
    for candidate in (gt_path.parent / "seqinfo.ini", gt_path.parent.parent / "seqinfo.ini"):
        if candidate.is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read(candidate, encoding="utf-8-sig")
                return tuple(int(parser["Sequence"][key]) for key in keys)
            except (configparser.Error, KeyError, ValueError, UnicodeDecodeError):
                (logger.warning if warn else logger.debug)("%s has no usable [Sequence] %s", candidate, "/".join(keys))
    return None


def read_seqinfo(gt_path: Path) -> tuple[int, int] | None:
    """The annotation size from a MOTChallenge ``seqinfo.ini`` (``SEQ/seqinfo.ini`` beside ``SEQ/gt/gt.txt``)."""
    size = _sequence_numbers(gt_path, "imWidth", "imHeight", warn=True)
    return (size[0], size[1]) if size is not None else None


def infer_annotation_size(max_right: float, max_bottom: float, width: int, height: int) -> tuple[int, int] | None:
    """The smallest common resolution with the video's aspect ratio that holds every box, when the boxes do not
    fit the video itself (``None`` when they do)."""
    if max_right <= width * 1.02 and max_bottom <= height * 1.02:
        return None
    aspect = width / height
    for w, h in STANDARD_SIZES:
        if abs(w / h - aspect) / aspect < 0.01 and w >= width and max_right <= w * 1.02 and max_bottom <= h * 1.02:
            return w, h
    return None


def read_seq_length(gt_path: Path) -> int | None:
    """The number of frames a MOTChallenge ``seqinfo.ini`` beside the ground truth gives (``seqLength``)."""
    found = _sequence_numbers(gt_path, "seqLength")
    return found[0] if found is not None and found[0] > 0 else None


#: The most frames a video of unknown length is taken to have: 1,000,000 is over 9 hours at 30 frames a second.
MAX_FRAMES = 1_000_000
#: A container's frame count may be an estimate (raw streams): ground truth up to this share past it is read (the
#: frames that are not there are reported when decoding); further past it, it is another video's.
FRAME_COUNT_SLACK = 0.1


def read_mot_rows(path: Path, columns: int = 7) -> np.ndarray:
    """The numbers of a MOTChallenge text file (comma- or semicolon-separated, ``#`` comments), ``columns`` of
    them a row: ``frame, id, left, top, width, height, conf`` (conf 1 where a row stops at height), and with
    ``columns=8`` the class too, which every row must then have."""
    return _read_rows(path, columns)[0]


def _read_rows(path: Path, columns: int) -> tuple[np.ndarray, list[int]]:
    """:func:`read_mot_rows` and the line number of each row."""
    rows = []
    numbers = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte order mark (Windows editors) is skipped
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ground truth {str(path)!r} cannot be read: {exc}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.replace(";", ",").split(",")]
        if len(parts) < 6:
            raise ConfigError(
                f"{path.name} line {number}: expected frame,id,left,top,width,height[,conf,...], got {line!r}",
                "MOTChallenge ground truth is comma-separated",
            )
        if columns > 7 and len(parts) < columns:
            raise ConfigError(f"{path.name} line {number}: MOT17 ground truth needs frame,id,l,t,w,h,conf,class,...")
        try:
            values = [float(p) for p in parts[:columns]]
        except ValueError:
            values = []
        if not values or not all(math.isfinite(v) for v in values):  # float() also reads nan and inf
            raise ConfigError(f"{path.name} line {number}: not numbers: {line!r}")
        if len(values) == 6:
            values.append(1.0)
        rows.append(values)
        numbers.append(number)
    return np.array(rows, np.float64).reshape(-1, columns), numbers


def read_mot(
    path: str | Path,
    video_size: tuple[int, int] | None = None,
    scale: float | None = None,
    annotation_size: tuple[int, int] | None = None,
    frame_count: int = 0,
) -> GroundTruth:
    """Read MOTChallenge ground truth (``frame,id,left,top,width,height,conf,...``, 1-based frames).

    Rows with ``conf`` 0 become ignored boxes. Coordinates are multiplied by ``scale``; without it, by
    ``video_size / annotation_size``, where the annotation size is given, read from a ``seqinfo.ini`` beside
    the file, or (with a warning) inferred as the smallest common resolution that holds every box when the
    boxes do not fit ``video_size``. Every frame from 1 to the last annotated one is included (frames without
    rows share one empty :class:`GroundTruthFrame`).

    Frame numbers past the video's end are refused (:class:`ConfigError` naming the line): past a
    ``seqinfo.ini``'s ``seqLength``, past ``frame_count`` (the video's frames, 0 when unknown) by more than
    :data:`FRAME_COUNT_SLACK` (a container's count may be an estimate), or past :data:`MAX_FRAMES` when neither
    is known. They are another video's ground truth, and would have every frame up to them built.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ground truth {str(path)!r} does not exist", "give a MOTChallenge gt.txt")
    rows, numbers = _read_rows(path, 7)
    if not len(rows):
        raise ConfigError(f"ground truth {str(path)!r} has no rows")
    if np.any(rows[:, 0] < 1) or np.any(rows[:, 0] != np.round(rows[:, 0])):
        raise ConfigError(f"ground truth {str(path)!r} has frame numbers that are not 1-based integers")
    check_frame_numbers(path, rows[:, 0], numbers, read_seq_length(path), frame_count)
    flat = np.flatnonzero((rows[:, 4] <= 0) | (rows[:, 5] <= 0))
    if len(flat):  # it could never be matched: a person counted, and always missed
        w, h = rows[flat[0], 4:6]
        raise ConfigError(f"{path.name} line {numbers[flat[0]]}: width and height must be positive, got {w:g}, {h:g}")
    warnings: list[str] = []
    reason = "given"
    if scale is None:
        size = annotation_size
        reason = "--gt-size" if size else ""
        if size is None:
            size = read_seqinfo(path)
            reason = "seqinfo.ini" if size else ""
        if size is None and video_size is not None:
            right = float((rows[:, 2] + rows[:, 4]).max())
            bottom = float((rows[:, 3] + rows[:, 5]).max())
            size = infer_annotation_size(right, bottom, *video_size)
            if size is not None:
                reason = f"inferred: boxes reach {right:.0f}x{bottom:.0f}, assumed annotated at {size[0]}x{size[1]}"
                warnings.append(
                    f"{path.name}: boxes do not fit the {video_size[0]}x{video_size[1]} video; assuming they were "
                    f"annotated at {size[0]}x{size[1]} (pass --gt-scale or --gt-size to be explicit)"
                )
                logger.info(warnings[-1])
        if size is not None and video_size is not None:
            sx, sy = video_size[0] / size[0], video_size[1] / size[1]
            if abs(sx - sy) / max(sx, sy) > 0.01:
                raise ConfigError(
                    f"annotation size {size[0]}x{size[1]} and video size {video_size[0]}x{video_size[1]} differ "
                    "in aspect ratio",
                    "pass --gt-scale",
                )
            scale = sx
        else:
            scale = 1.0
            reason = "none"
    if not scale > 0:
        raise ConfigError(f"ground-truth scale must be positive, got {scale!r}")
    last = int(rows[:, 0].max())
    nobody = GroundTruthFrame(np.zeros((0, 4), np.float32), np.zeros(0, bool), np.zeros(0, np.int64))
    frames: dict[int | str, GroundTruthFrame] = dict.fromkeys(range(1, last + 1), nobody)
    for index, mine in rows_by_frame(rows).items():
        frames[index] = GroundTruthFrame(mot_boxes(mine, scale), mine[:, 6] == 0, mine[:, 1].astype(np.int64))
    width, height = video_size or (0, 0)
    return GroundTruth(frames, str(path), float(scale), reason, width, height, warnings)


def rows_by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    """The rows of a MOTChallenge file (:func:`read_mot_rows`) by their frame number, in file order."""
    grouped: dict[int, list[np.ndarray]] = {}
    for row in rows:
        grouped.setdefault(int(row[0]), []).append(row)
    return {index: np.array(found, np.float64).reshape(-1, rows.shape[1]) for index, found in grouped.items()}


def mot_boxes(rows: np.ndarray, scale: float) -> np.ndarray:
    """The boxes of MOTChallenge rows (``left, top, width, height`` in columns 2-5) as ``x0, y0, x1, y1``, times
    ``scale``."""
    return np.stack([rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]], axis=1) * scale


def check_frame_numbers(
    path: Path, frames: np.ndarray, lines: Sequence[int], seq_length: int | None, frame_count: int
) -> None:
    """Refuse the first frame number past the video's end (see :func:`read_mot`), naming its line."""
    if seq_length:
        limit, end = seq_length, f"the video's end ({seq_length} frames, seqinfo.ini)"
    elif frame_count > 0:
        limit, end = int(frame_count * (1 + FRAME_COUNT_SLACK)), f"the video's end ({frame_count} frames)"
    else:
        limit, end = MAX_FRAMES, f"{MAX_FRAMES}, the most a video of unknown length is taken to have"
    beyond = np.flatnonzero(frames > limit)
    if len(beyond):
        first = int(beyond[0])
        raise ConfigError(
            f"{path.name} line {lines[first]}: frame {int(frames[first])} is past {end}",
            "is this the ground truth of another video? frames are numbered from 1",
        )


def read_imglab(path: str | Path) -> GroundTruth:
    """Read a dlib imglab XML file; keys are the image paths, resolved against the XML's folder.

    Boxes with ``ignore='1'`` become ignored boxes. Images listed without boxes are negatives.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ground truth {str(path)!r} does not exist", "give a dlib imglab XML file")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ConfigError(f"{str(path)!r} is not an imglab XML file: {exc}") from None
    images = root.findall("./images/image")
    if not images:
        raise ConfigError(f"{str(path)!r} lists no <images><image file=...>", "is this a dlib imglab XML file?")
    frames: dict[int | str, GroundTruthFrame] = {}
    names: dict[str, str] = {}
    for image in images:
        name = image.get("file")
        if not name:
            raise ConfigError(f"{str(path)!r}: an <image> has no file attribute")
        key = str((path.parent / name).resolve())
        if key in names:  # the later entry's boxes would replace the earlier's
            raise ConfigError(
                f"{str(path)!r}: image {names[key]!r} is listed twice (as {names[key]!r} and {name!r})",
                "list each image once, with all its boxes",
            )
        names[key] = name
        boxes, ignore = [], []
        for box in image.findall("box"):
            try:
                top, left = float(box.get("top", "")), float(box.get("left", ""))
                width, height = float(box.get("width", "")), float(box.get("height", ""))
            except ValueError:
                top = left = width = height = math.nan
            if not all(math.isfinite(v) for v in (top, left, width, height)):  # float() also reads nan and inf
                raise ConfigError(f"{str(path)!r}: a box of {name} lacks top/left/width/height numbers")
            if width <= 0 or height <= 0:  # it could never be matched: a face counted, and always missed
                raise ConfigError(
                    f"{str(path)!r}: a box of {name} has width {width:g} and height {height:g}: both must be positive"
                )
            boxes.append([left, top, left + width, top + height])
            ignore.append(box.get("ignore", "0").strip().lower() in {"1", "true"})
        frames[key] = GroundTruthFrame(np.array(boxes).reshape(-1, 4), np.array(ignore, bool))
    return GroundTruth(frames, str(path))


def gt_format(path: str | Path) -> str:
    """``"imglab"`` for an XML file, else ``"mot"``."""
    return "imglab" if Path(path).suffix.lower() == ".xml" else "mot"


def frame_ranges(text: str) -> list[tuple[int, int]]:
    """The inclusive ranges of ``A-B`` / ``A,B,C`` / ``A-B,C`` (:class:`ConfigError` when it is not such text)."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            lo = int(first)
            hi = int(last) if dash else lo
        except ValueError:
            raise ConfigError(f"frames {text!r} is not like 1-62 or 1,5,9", "e.g. --frames 63-124") from None
        if hi < lo:
            raise ConfigError(f"frames {part!r}: the range is empty")
        ranges.append((lo, hi))
    return ranges


def parse_frames(text: str | None, available: Iterable[int]) -> list[int]:
    """Frame numbers selected by ``A-B`` / ``A,B,C`` / ``A-B,C`` (1-based, inclusive) among ``available``."""
    available = sorted(available)
    if not text:
        return available
    ranges = frame_ranges(text)
    selected = [i for i in available if any(lo <= i <= hi for lo, hi in ranges)]
    if not selected:
        raise ConfigError(f"frames {text!r} selects no annotated frame", f"annotated: {available[0]}-{available[-1]}")
    return selected
