"""Resumable jobs: a running job's detections saved to S3 every ``worker.checkpoint_seconds``; the next worker
that gets the video replays them instead of running the models again.

What is saved is what the models said about each analysed frame so far (every detector's raw
:class:`~crowdcount.detectors.Detections`, in frame order), not the finished frame results: on resume the video
is decoded from the start and the saved detections are fed, frame by frame, through the same analyzer and its
frame processors (tracking, lines, zones, identities), the models running only for the frames past the
checkpoint. Decoding and tracking are cheap next to the models, every processor's state is rebuilt exactly, and
the result is the one an uninterrupted run writes, frame for frame.

The detectors are wrapped (:class:`ReplayingDetector`), so the analyzer needs no change. A checkpoint always
ends at a batch boundary (it is taken between batches), so the resumed run forms the same batches as an
uninterrupted one.

A checkpoint is one ``.npz`` object (numpy arrays, no pickle) holding a JSON header: the video's ETag and the
analyzer configuration's fingerprint (a checkpoint of another input or configuration is ignored), the detectors,
and the number of frames it covers.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crowdcount.aws.errors import is_aws_exception, is_not_found, to_aws_error
from crowdcount.aws.storage import _clean_segments, video_stem
from crowdcount.detectors import Detections

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Largest checkpoint read back (a bigger object is not ours; it is ignored).
MAX_CHECKPOINT_BYTES = 512 * 1024**2


def checkpoint_key(video_key: str, step: str, video_id: int, result_prefix: str | None = None) -> str:
    """Where a job's checkpoint goes: ``<result_prefix>checkpoints/<VideoId>/<step>/<video name>.npz``, or without
    a result prefix ``<dirname(dirname(key))>/<step>/checkpoints/<video name>.npz`` (beside its result file)."""
    name = f"{video_stem(video_key)}.npz"
    if result_prefix:
        return "/".join([*_clean_segments(result_prefix), "checkpoints", str(video_id), *_clean_segments(step), name])
    base = _clean_segments(posixpath.dirname(posixpath.dirname(video_key)))
    return "/".join([*base, *_clean_segments(step), "checkpoints", name])


class ReplayingDetector:
    """Wraps a detector: the first ``len(replay)`` frames it is asked about get the saved detections, the
    others go to the model; :attr:`outputs` holds every frame's detections so far (what a checkpoint saves).
    Everything else (``category``, ``describe()``, ``min_detection_score`` ...) is the wrapped detector's."""

    def __init__(self, inner: Any, replay: Sequence[Detections] = ()) -> None:
        self.inner = inner
        self.replay = list(replay)
        self.outputs: list[Detections] = []
        self.replayed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def detect(self, frames: Sequence[np.ndarray], score_floor: float | None = None) -> list[Detections]:
        start = len(self.outputs)
        cached = self.replay[start : start + len(frames)]
        fresh = list(self.inner.detect(frames[len(cached) :], score_floor)) if len(cached) < len(frames) else []
        self.replayed += len(cached)
        out = [*cached, *fresh]
        self.outputs.extend(out)
        return out


@dataclass
class Checkpoint:
    """What a checkpoint holds: the header and each detector's detections, frame by frame."""

    header: dict[str, Any]
    detections: list[list[Detections]]

    @property
    def frames(self) -> int:
        return int(self.header.get("frames", 0))


def encode(header: dict[str, Any], detections: Sequence[Sequence[Detections]]) -> bytes:
    """The ``.npz`` bytes of a checkpoint (arrays concatenated per detector, with per-frame counts)."""
    arrays: dict[str, np.ndarray] = {}
    header = {**header, "n_detectors": len(detections), "data_keys": {}}
    for i, frames in enumerate(detections):
        arrays[f"d{i}_counts"] = np.array([len(d) for d in frames], np.int64)
        arrays[f"d{i}_xyxy"] = np.concatenate([d.xyxy for d in frames]) if frames else np.zeros((0, 4), np.float32)
        arrays[f"d{i}_conf"] = np.concatenate([d.confidence for d in frames]) if frames else np.zeros(0, np.float32)
        arrays[f"d{i}_cls"] = np.concatenate([d.class_id for d in frames]) if frames else np.zeros(0, np.int32)
        keys = sorted({k for d in frames for k in d.data})
        for k in keys:
            if not all(k in d.data for d in frames):
                raise ValueError(f"detections data {k!r} is not on every frame")
            names = header["data_keys"].setdefault(str(i), [])
            arrays[f"d{i}_data_{len(names)}"] = np.concatenate([np.asarray(d.data[k]) for d in frames])
            names.append(k)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    out = io.BytesIO()
    np.savez_compressed(out, allow_pickle=False, **arrays)
    return out.getvalue()


def decode(data: bytes) -> Checkpoint:
    """A checkpoint from its ``.npz`` bytes (``ValueError`` when it is not one)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        header = json.loads(npz["header"].tobytes().decode())
        if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
            raise ValueError("not a crowdcount checkpoint of this version")
        detections: list[list[Detections]] = []
        for i in range(int(header["n_detectors"])):
            counts = npz[f"d{i}_counts"]
            ends = np.cumsum(counts)
            starts = ends - counts
            xyxy, conf, cls = npz[f"d{i}_xyxy"], npz[f"d{i}_conf"], npz[f"d{i}_cls"]
            data_keys = header.get("data_keys", {}).get(str(i), [])
            extra = {k: npz[f"d{i}_data_{j}"] for j, k in enumerate(data_keys)}
            detections.append(
                [
                    Detections(xyxy[a:b], conf[a:b], cls[a:b], {k: v[a:b] for k, v in extra.items()})
                    for a, b in zip(starts, ends, strict=True)
                ]
            )
    return Checkpoint(header, detections)


class Checkpointer:
    """Saves and loads one job's checkpoint in S3.

    Args:
        s3: a boto3 S3 client. bucket, key: where the checkpoint lives.
        identity: what a checkpoint must match to be used (``etag``, ``config``, ``frame_ratio``, detectors).
        every_s: seconds between saves (0: never save).
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        identity: dict[str, Any],
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.identity = identity
        self.every_s = every_s
        self.clock = clock
        self.last_saved = clock()
        self.saved_frames = 0
        self.saves = 0
        self.wrappers: list[ReplayingDetector] = []

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def load(self) -> Checkpoint | None:
        """The saved checkpoint when there is one for this very input and configuration, else None."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.key)
            if int(response.get("ContentLength") or 0) > MAX_CHECKPOINT_BYTES:
                logger.warning("checkpoint %s is too large; ignoring it", self.uri)
                return None
            data = response["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                return None
            if is_aws_exception(exc):  # e.g. a role without GetObject: start from the beginning
                logger.warning("cannot read checkpoint %s: %s", self.uri, to_aws_error(exc, "reading it"))
                return None
            raise
        try:
            checkpoint = decode(data)
        # empty, cut short, not ours, a header of another shape (a list where a map belongs...)
        except (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning("checkpoint %s is unreadable (%s); starting from the beginning", self.uri, exc)
            return None
        mismatch = [k for k, v in self.identity.items() if checkpoint.header.get(k) != v]
        if mismatch:
            logger.info("checkpoint %s is for another %s; starting from the beginning", self.uri, mismatch[0])
            return None
        return checkpoint

    def wrap(self, detectors: Sequence[Any], checkpoint: Checkpoint | None) -> list[ReplayingDetector]:
        """The detectors, wrapped to replay ``checkpoint`` (when given) and record what they find."""
        replays = checkpoint.detections if checkpoint is not None else [[] for _ in detectors]
        self.wrappers = [ReplayingDetector(d, r) for d, r in zip(detectors, replays, strict=True)]
        self.saved_frames = checkpoint.frames if checkpoint is not None else 0
        return self.wrappers

    @property
    def frames(self) -> int:
        """Frames whose detections every detector has (a batch boundary)."""
        return min((len(w.outputs) for w in self.wrappers), default=0)

    def due(self) -> bool:
        return self.every_s > 0 and self.clock() - self.last_saved >= self.every_s

    def save(self) -> bool:
        """Upload the detections so far when they cover more frames than the last save; False when it failed
        (logged: a failed checkpoint never fails the job)."""
        self.last_saved = self.clock()
        frames = self.frames
        if not self.wrappers or frames <= self.saved_frames:
            return False
        header = {"version": FORMAT_VERSION, **self.identity, "frames": frames, "saved_at": time.time()}
        try:
            body = encode(header, [w.outputs[:frames] for w in self.wrappers])
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/x-npz")
        except Exception as exc:
            if not is_aws_exception(exc) and not isinstance(exc, ValueError):
                raise
            logger.warning("could not save checkpoint %s: %s", self.uri, exc)
            return False
        self.saved_frames = frames
        self.saves += 1
        logger.info("checkpoint saved: %s (%d frames)", self.uri, frames)
        return True

    def delete(self) -> None:
        """Remove the checkpoint (the job is over); best effort."""
        if self.saves == 0 and self.saved_frames == 0:
            return
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if not is_aws_exception(exc):
                raise
            logger.warning("could not delete checkpoint %s: %s", self.uri, exc)
