"""Evaluating several annotated clips at once: a manifest lists them, each with its ground truth and whether
it is a development clip (settings may be chosen on it) or a held-out one (only ever measured).

A manifest is a JSON file::

    {"clips": [
      {"name": "pets09", "video": "pets09/vtest.avi", "gt": "pets09/gt_frames001-124.txt", "gt_scale": 0.625,
       "ignore": ["0,0,480,70"], "frames": "1-124", "split": "dev"},
      {"name": "mot17-02", "video": "mot17/MOT17-02/MOT17-02-SDP-raw.mp4", "gt": "mot17/MOT17-02/gt.txt",
       "gt_scale": 0.5, "mot17": true, "split": "held-out"}
    ]}

Relative paths are relative to the manifest's folder. ``mot17`` reads MOTChallenge 2017 classes: only
pedestrians (class 1, conf 1) count; pedestrians marked conf 0, people on vehicles, static people, distractors
and reflections (classes 2, 7, 8, 12) are neither right nor wrong; vehicles and occluders are dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.errors import ConfigError
from crowdcount.eval.groundtruth import (
    GroundTruth,
    GroundTruthFrame,
    IgnoreRegion,
    frame_ranges,
    mot_boxes,
    parse_frames,
    read_mot,
    read_mot_rows,
    rows_by_frame,
)

SPLITS = ("dev", "held-out")
#: MOTChallenge 2017 classes that are neither right nor wrong.
MOT17_IGNORED_CLASSES = (2, 7, 8, 12)


@dataclass(frozen=True)
class Clip:
    """One annotated clip of a manifest."""

    name: str
    video: Path
    gt: Path
    split: str = "dev"
    gt_scale: float | None = None
    ignore: tuple[IgnoreRegion, ...] = ()
    frames: str | None = None
    mot17: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def load_manifest(path: str | Path) -> list[Clip]:
    """Read and check a manifest (see the module docstring); every problem is one :class:`ConfigError`."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"manifest {str(path)!r} cannot be read: {exc}", "give a JSON file with a 'clips' list"
        ) from None
    clips = document.get("clips") if isinstance(document, dict) else None
    if not isinstance(clips, list) or not clips:
        raise ConfigError(f"manifest {str(path)!r} has no 'clips' list", 'write {"clips": [{"name": ..., ...}]}')
    base = path.parent
    out: list[Clip] = []
    names: set[str] = set()
    for number, entry in enumerate(clips, 1):
        where = f"manifest {path.name} clip {number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object, got {type(entry).__name__}")
        unknown = set(entry) - {"name", "video", "gt", "split", "gt_scale", "ignore", "frames", "mot17", "notes"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        for key in ("name", "video", "gt"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"{where}: '{key}' must be a non-empty string")
        name = entry["name"]
        if name == "mean":
            raise ConfigError(f"{where}: the name 'mean' is the table's row of means", "rename the clip")
        if name in names:
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        split = entry.get("split", "dev")
        if split not in SPLITS:
            raise ConfigError(f"{where}: 'split' must be one of {', '.join(SPLITS)}, got {split!r}")
        scale = entry.get("gt_scale")
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf
        ):
            raise ConfigError(f"{where}: 'gt_scale' must be a positive number, got {scale!r}")
        ignore = entry.get("ignore", [])
        if not isinstance(ignore, list) or not all(isinstance(r, str) for r in ignore):
            raise ConfigError(f"{where}: 'ignore' must be a list of 'X0,Y0,X1,Y1' strings")
        frames = entry.get("frames")
        if frames is not None and not isinstance(frames, str):
            raise ConfigError(f'{where}: \'frames\' must be text such as "1-62" or "1,5,9", got {frames!r}')
        if frames:
            try:
                frame_ranges(frames)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        mot17 = entry.get("mot17", False)
        if not isinstance(mot17, bool):
            raise ConfigError(f"{where}: 'mot17' must be true or false, got {mot17!r}")
        try:
            regions = tuple(IgnoreRegion.parse(r) for r in ignore)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}", exc.hint) from None
        video, gt = base / entry["video"], base / entry["gt"]
        for label, file in (("video", video), ("gt", gt)):
            if not (file.is_file() or (label == "video" and file.is_dir())):  # a video or an image sequence
                raise ConfigError(f"{where}: {label} {str(file)!r} does not exist")
        out.append(
            Clip(
                name,
                video,
                gt,
                split,
                None if scale is None else float(scale),
                regions,
                frames,
                mot17,
                {"notes": entry["notes"]} if "notes" in entry else {},
            )
        )
    return out


def read_clip_gt(clip: Clip, video_size: tuple[int, int], frame_count: int = 0) -> GroundTruth:
    """The clip's ground truth in video pixels (MOT17 classes applied when ``clip.mot17``; ``frame_count``: the
    video's frames, see :func:`~crowdcount.eval.groundtruth.read_mot`)."""
    gt = read_mot(clip.gt, video_size, scale=clip.gt_scale, frame_count=frame_count)
    if not clip.mot17:
        return gt
    frames = dict(gt.frames)  # the frames without rows stay read_mot's one empty frame
    for key, mine in rows_by_frame(read_mot_rows(clip.gt, columns=8)).items():
        person = (mine[:, 6] == 1) & (mine[:, 7] == 1)
        keep = person | np.isin(mine[:, 7], MOT17_IGNORED_CLASSES) | (mine[:, 7] == 1)
        mine, ignored = mine[keep], ~person[keep]
        frames[key] = GroundTruthFrame(mot_boxes(mine, gt.scale), ignored, mine[:, 1].astype(np.int64))
    return GroundTruth(frames, gt.source, gt.scale, gt.scale_reason, gt.width, gt.height, gt.warnings)


def clip_keys(clip: Clip, gt: GroundTruth) -> list[int]:
    """The annotated frames of ``clip`` to evaluate."""
    return parse_frames(clip.frames, [k for k in gt.frames if isinstance(k, int)])


def mean_row(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """The unweighted mean of ``keys`` over ``rows`` (each clip counts once), ignoring missing values."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def evaluate_manifest(
    clips: Sequence[Clip], evaluate_clip: Callable[[Clip], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Rows per split, each a clip's metrics from ``evaluate_clip`` plus its name, then one ``mean`` row per split."""
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for clip in clips:
        rows[clip.split].append({"clip": clip.name, "split": clip.split, **evaluate_clip(clip)})
    return {split: found for split, found in rows.items() if found}
