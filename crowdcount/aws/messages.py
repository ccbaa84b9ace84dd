"""Queue messages: what a body on the human-detection queue may say, parsed into :class:`Job` s.

Accepted bodies (anything else is a :class:`~crowdcount.errors.MessageError`):

* a job, the seed's contract: ``{"VideoId": 42, "s3": {"bucket": "b", "key": "videos/42/video/clip.mp4"}}``
  (optional ``"force": true`` recomputes a video already done with the same input);
* an S3 event notification delivered straight from a bucket to the queue (``{"Records": [{"s3": ...}]}``),
  possibly wrapped in an SNS envelope; the ``VideoId`` is the first path segment after
  ``video_split.input_prefix`` (``videos/42/...`` is video 42). ``s3:TestEvent`` bodies and non-create
  records are ignored;
* ``{"command": "stop"}``: the worker that receives it stops cleanly.
"""

from __future__ import annotations

import json
import re
import reprlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from crowdcount.errors import MessageError

#: Largest VideoId accepted (DynamoDB numbers are exact up to 38 digits; keep ids sane).
MAX_VIDEO_ID = 10**18
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
#: ASCII digits only: ``str.isdigit`` also accepts "²" or "٣", which ``int`` then refuses or reads otherwise.
_DIGITS_RE = re.compile(r"[0-9]{1,19}")
_MAX_KEY_BYTES = 1024
#: Largest body parsed (SQS allows 1 MiB; anything larger is not ours).
MAX_BODY_BYTES = 1024 * 1024
#: How many SNS envelopes may wrap a body.
_MAX_ENVELOPES = 2


@dataclass(frozen=True)
class Job:
    """One video to analyse: its ``VideoId`` and where the video lies in S3."""

    video_id: int
    bucket: str
    key: str
    force: bool = False

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ParsedMessage:
    """What a message asks for: ``jobs`` to run, a ``stop``, or nothing (``ignored`` says why)."""

    jobs: list[Job] = field(default_factory=list)
    stop: bool = False
    ignored: str | None = None


_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80


def _show(value: Any) -> str:
    """A short repr of any JSON value (bounded depth and length: a body may nest 900 deep)."""
    try:
        return _REPR.repr(value)
    except RecursionError:  # pragma: no cover - reprlib bounds the depth
        return f"<{type(value).__name__}>"


def _video_id(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise MessageError(f"{where} must be an integer, got {_show(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise MessageError(f"{where} must be an integer, got {_show(value)}")
    if not 0 <= value <= MAX_VIDEO_ID:
        raise MessageError(f"{where} must be between 0 and {MAX_VIDEO_ID}, got {value}")
    return value


def _bucket(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _BUCKET_RE.match(value):
        raise MessageError(f"{where} must be an S3 bucket name, got {_show(value)}")
    return value


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or value.endswith("/"):
        raise MessageError(f"{where} must be the key of an S3 object, got {_show(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate ("\\udc80"): not a key S3 can hold
        raise MessageError(f"{where} is not valid UTF-8: {_show(value)}") from None
    if size > _MAX_KEY_BYTES or any(ord(c) < 32 for c in value):
        raise MessageError(f"{where} is not a valid S3 key: {_show(value)}")
    return value


def video_id_from_key(key: str, input_prefix: str) -> int:
    """The VideoId of an S3 key laid out as ``<input_prefix><VideoId>/...``."""
    prefix = input_prefix or ""
    if prefix and not key.startswith(prefix):
        raise MessageError(f"S3 key {key!r} is not under the input prefix {prefix!r}; its VideoId is unknown")
    first = key[len(prefix) :].lstrip("/").split("/", 1)[0]
    if not _DIGITS_RE.fullmatch(first):
        raise MessageError(f"S3 key {key!r} does not start with {prefix}<VideoId>/; its VideoId is unknown")
    return _video_id(int(first), "the VideoId in the S3 key")


def is_result_key(key: str, input_prefix: str, result_prefix: str | None, step: str) -> bool:
    """Whether ``key`` is where the worker writes (a result file or a checkpoint), not a video: under
    ``result_prefix``, or, under the input prefix, in a ``<step>/`` folder below the VideoId (the layout
    without a result prefix, ``videos/42/human_detector/clip.json``). The S3 event of the worker's own upload
    must not come back as a job."""
    segments = [s for s in key.split("/") if s not in ("", ".", "..")]
    if result_prefix:
        own = [s for s in result_prefix.split("/") if s not in ("", ".", "..")]
        if own and segments[: len(own)] == own:
            return True
    prefix = input_prefix or ""
    if prefix and not key.startswith(prefix):
        return False
    parts = key[len(prefix) :].lstrip("/").split("/")
    return len(parts) >= 3 and _DIGITS_RE.fullmatch(parts[0]) is not None and step in parts[1:-1]


def _parse_record(record: Any, index: int, input_prefix: str, result_prefix: str | None, step: str) -> Job | None:
    where = f"Records[{index}]"
    if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
        raise MessageError(f"{where} is not an S3 event record (no 's3' object)")
    event = record.get("eventName", "ObjectCreated:")
    if not isinstance(event, str) or not event.startswith("ObjectCreated:"):
        return None
    s3 = record["s3"]
    bucket = s3.get("bucket")
    obj = s3.get("object")
    if not isinstance(bucket, dict) or not isinstance(obj, dict):
        raise MessageError(f"{where}.s3 must hold 'bucket' and 'object' objects")
    raw_key = obj.get("key")
    if not isinstance(raw_key, str):
        raise MessageError(f"{where}.s3.object.key must be a string, got {_show(raw_key)}")
    key = _key(unquote_plus(raw_key), f"{where}.s3.object.key")
    if is_result_key(key, input_prefix, result_prefix, step):
        return None
    return Job(
        video_id=video_id_from_key(key, input_prefix),
        bucket=_bucket(bucket.get("name"), f"{where}.s3.bucket.name"),
        key=key,
    )


def parse_message(
    body: str,
    input_prefix: str = "videos/",
    result_prefix: str | None = None,
    step: str = "human_detector",
    _envelopes: int = 0,
) -> ParsedMessage:
    """Parse a queue message body. Raises :class:`MessageError` when malformed, and nothing else whatever the
    body (fuzzed in the tests); the error carries a ``video_id`` attribute when the body names a valid one, so
    the failure can be recorded in the video's document. S3 events for the worker's own writes (see
    :func:`is_result_key`) are ignored."""
    if not isinstance(body, str):
        raise MessageError(f"message body must be text, got {type(body).__name__}")
    if len(body) > MAX_BODY_BYTES:
        raise MessageError(f"message body is {len(body)} characters, over the limit of {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"message body is not JSON: {exc}") from None
    except RecursionError:
        raise MessageError("message body is not JSON this worker reads: nested too deeply") from None
    # An SNS envelope (bucket -> SNS topic -> queue without raw delivery).
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        if _envelopes >= _MAX_ENVELOPES:
            raise MessageError("message body is wrapped in too many SNS envelopes")
        return parse_message(data["Message"], input_prefix, result_prefix, step, _envelopes + 1)
    if not isinstance(data, dict):
        raise MessageError(f"message body must be a JSON object, got {type(data).__name__}")
    if "command" in data:
        if data["command"] == "stop" and len(data) == 1:
            return ParsedMessage(stop=True)
        raise MessageError(f"unknown command message {body[:200]!r} (the only command is {{'command': 'stop'}})")
    if data.get("Event") == "s3:TestEvent":
        return ParsedMessage(ignored="S3 test event")
    if "Records" in data:
        records = data["Records"]
        if not isinstance(records, list) or not records:
            raise MessageError("'Records' must be a non-empty list of S3 event records")
        jobs = [
            job
            for i, r in enumerate(records)
            if (job := _parse_record(r, i, input_prefix, result_prefix, step)) is not None
        ]
        if not jobs:
            return ParsedMessage(ignored="no ObjectCreated records of videos (result files are not jobs)")
        return ParsedMessage(jobs=jobs)
    return ParsedMessage(jobs=[parse_job(data, input_prefix)])


def parse_job(data: dict[str, Any], input_prefix: str | None = None) -> Job:
    """Validate a ``{"VideoId": ..., "s3": {"bucket": ..., "key": ...}}`` object. With ``input_prefix``, a key
    laid out as ``<input_prefix><id>/...`` must name the same VideoId (else the result and the status would be
    written for one video from another's footage)."""
    if "VideoId" not in data:
        raise MessageError("message has no 'VideoId' (expected {'VideoId': <int>, 's3': {'bucket', 'key'}})")
    video_id = _video_id(data["VideoId"], "'VideoId'")
    try:
        s3 = data.get("s3")
        if not isinstance(s3, dict):
            raise MessageError(f"message for VideoId {video_id} has no 's3' object with 'bucket' and 'key'")
        force = data.get("force", False)
        if not isinstance(force, bool):
            raise MessageError(f"'force' must be true or false, got {_show(force)}")
        job = Job(video_id, _bucket(s3.get("bucket"), "'s3.bucket'"), _key(s3.get("key"), "'s3.key'"), force)
        if input_prefix and job.key.startswith(input_prefix):
            first = job.key[len(input_prefix) :].lstrip("/").split("/", 1)[0]
            if _DIGITS_RE.fullmatch(first) and int(first) != video_id:
                raise MessageError(
                    f"'VideoId' {video_id} does not match the VideoId {int(first)} of its key {job.key!r}",
                    "send the VideoId of the video the key names",
                )
        return job
    except MessageError as exc:
        exc.video_id = video_id
        raise


def job_body(video_id: int, bucket: str, key: str, force: bool = False) -> str:
    """The message body of a job (what ``crowdcount submit`` sends)."""
    body: dict[str, Any] = {"VideoId": video_id, "s3": {"bucket": bucket, "key": key}}
    if force:
        body["force"] = True
    return json.dumps(body)


STOP_BODY = json.dumps({"command": "stop"})
