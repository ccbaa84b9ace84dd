"""S3: videos streamed to temporary files (with a size cap), result files uploaded, result keys named.

An S3 key is never used as a local path: temporary files get random names (only a sanitised extension is
kept, as a hint for the decoder), so keys such as ``../../etc/passwd`` are harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import posixpath
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowdcount.aws.errors import error_code, is_aws_exception, is_not_found, to_aws_error
from crowdcount.errors import AWSError, VideoError

logger = logging.getLogger(__name__)

#: Prefix of the temporary files the worker writes (stale ones of dead processes are removed at start).
TEMP_PREFIX = "crowdcount-job-"
CHUNK_BYTES = 1 << 20
_EXT_RE = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


class Cancelled(Exception):
    """The job was cancelled (shutdown grace period over) while it ran."""


@dataclass(frozen=True)
class S3Object:
    """What ``head_object`` says about a video: size and ETag (which identifies its content)."""

    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "key": self.key, "etag": self.etag, "size": self.size}


def head_video(s3: Any, bucket: str, key: str) -> S3Object:
    """Size and ETag of a video. :class:`VideoError` when it does not exist, :class:`AWSError` otherwise."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_not_found(exc):
            raise VideoError(f"video s3://{bucket}/{key} does not exist", "check the bucket and key") from None
        if is_aws_exception(exc):
            raise to_aws_error(exc, f"reading s3://{bucket}/{key}") from None
        raise
    return S3Object(bucket, key, int(head["ContentLength"]), str(head.get("ETag", "")).strip('"'))


def _suffix(key: str) -> str:
    ext = posixpath.splitext(posixpath.basename(key))[1]
    return ext.lower() if _EXT_RE.match(ext) else ""


@contextlib.contextmanager
def downloaded(
    s3: Any,
    obj: S3Object,
    max_bytes: int,
    temp_dir: str | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[Path]:
    """Stream ``obj`` into a temporary file (never whole into memory) and yield its path; the file is removed
    on leaving, whatever happens. :class:`VideoError` when larger than ``max_bytes`` or gone, :class:`AWSError`
    when the transfer fails or the object changes meanwhile, :class:`Cancelled` when ``cancel`` is set."""
    if obj.size > max_bytes:
        raise VideoError(
            f"video {obj.uri} is {obj.size} bytes, over the limit of {max_bytes}",
            "raise worker.max_video_bytes or split the video",
        )
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=_suffix(obj.key), dir=temp_dir)
    path = Path(name)
    # Held for the file's whole life: a file nobody holds a lock on is a dead worker's (PIDs say nothing in
    # containers, where every worker is PID 1).
    lock = os.open(name, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            try:
                kwargs = {"IfMatch": f'"{obj.etag}"'} if obj.etag else {}
                body = s3.get_object(Bucket=obj.bucket, Key=obj.key, **kwargs)["Body"]
                try:
                    for chunk in body.iter_chunks(CHUNK_BYTES):
                        if cancel is not None and cancel.is_set():
                            raise Cancelled("download cancelled")
                        written += len(chunk)
                        if written > max_bytes:
                            raise VideoError(f"video {obj.uri} exceeds the limit of {max_bytes} bytes")
                        out.write(chunk)
                finally:
                    body.close()
            except (Cancelled, VideoError):
                raise
            except Exception as exc:
                if is_not_found(exc):
                    raise VideoError(f"video {obj.uri} does not exist (deleted meanwhile)") from None
                if error_code(exc) in ("PreconditionFailed", "412"):
                    raise AWSError(f"video {obj.uri} changed while being downloaded", "it will be retried") from None
                if is_aws_exception(exc):
                    raise to_aws_error(exc, f"downloading {obj.uri}") from None
                raise
        if written != obj.size:
            raise AWSError(f"downloading {obj.uri}: got {written} of {obj.size} bytes", "it will be retried")
        logger.debug("downloaded %s (%d bytes) to %s", obj.uri, written, path)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(lock)


def remove_stale_temp_files(temp_dir: str | None = None) -> int:
    """Remove temporary videos left by workers that no longer run (e.g. killed with SIGKILL): those whose lock
    (``flock``, held by the downloading worker for the file's life) nobody holds. Works across processes and
    containers sharing the folder, where PIDs do not (every container's worker is PID 1)."""
    folder = Path(temp_dir or tempfile.gettempdir())
    removed = 0
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live worker's
            os.close(fd)
            continue
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    if removed:
        logger.info("removed %d stale temporary video(s) from %s", removed, folder)
    return removed


def _clean_segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s not in ("", ".", "..")]


def video_stem(key: str) -> str:
    """The video's name without extension (``videos/42/video/clip.mp4`` -> ``clip``)."""
    name = posixpath.basename(key)
    stem = posixpath.splitext(name)[0] if not name.startswith(".") else name
    return stem if stem not in ("", ".", "..") else "video"


def result_key(video_key: str, step: str, video_id: int, result_prefix: str | None = None) -> str:
    """Where a video's result file goes.

    Default (the seed's layout): ``<dirname(dirname(key))>/<step>/<video name>.json``, so
    ``videos/42/video/clip.mp4`` gives ``videos/42/human_detector/clip.json``. With ``result_prefix``:
    ``<result_prefix>/<VideoId>/<step>/<video name>.json``. Empty, ``.`` and ``..`` segments are dropped.
    """
    if result_prefix:
        base = [*_clean_segments(result_prefix), str(video_id)]
    else:
        base = _clean_segments(posixpath.dirname(posixpath.dirname(video_key)))
    return "/".join([*base, *_clean_segments(step), f"{video_stem(video_key)}.json"])


def upload_result(s3: Any, bucket: str, key: str, text: str) -> None:
    """Upload a result file (JSON text). :class:`AWSError` when it fails."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType="application/json")
    except Exception as exc:
        if is_aws_exception(exc):
            raise to_aws_error(exc, f"uploading the result to s3://{bucket}/{key}") from None
        raise


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether ``s3://bucket/key`` exists (:class:`AWSError` when S3 cannot say)."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:
        if is_not_found(exc):
            return False
        if is_aws_exception(exc):
            raise to_aws_error(exc, f"reading s3://{bucket}/{key}") from None
        raise
