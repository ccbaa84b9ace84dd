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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from crowdcount.errors import MessageError

#: Largest VideoId accepted (DynamoDB numbers are exact up to 38 digits; keep ids sane).
MAX_VIDEO_ID = 10**18
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_MAX_KEY_BYTES = 1024


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


def _video_id(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise MessageError(f"{where} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise MessageError(f"{where} must be an integer, got {value!r}")
    if not 0 <= value <= MAX_VIDEO_ID:
        raise MessageError(f"{where} must be between 0 and {MAX_VIDEO_ID}, got {value}")
    return value


def _bucket(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _BUCKET_RE.match(value):
        raise MessageError(f"{where} must be an S3 bucket name, got {value!r}")
    return value


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or value.endswith("/"):
        raise MessageError(f"{where} must be the key of an S3 object, got {value!r}")
    if len(value.encode("utf-8")) > _MAX_KEY_BYTES or any(ord(c) < 32 for c in value):
        raise MessageError(f"{where} is not a valid S3 key: {value[:80]!r}")
    return value


def video_id_from_key(key: str, input_prefix: str) -> int:
    """The VideoId of an S3 key laid out as ``<input_prefix><VideoId>/...``."""
    prefix = input_prefix or ""
    if prefix and not key.startswith(prefix):
        raise MessageError(f"S3 key {key!r} is not under the input prefix {prefix!r}; its VideoId is unknown")
    first = key[len(prefix) :].lstrip("/").split("/", 1)[0]
    if not first.isdigit():
        raise MessageError(f"S3 key {key!r} does not start with {prefix}<VideoId>/; its VideoId is unknown")
    return _video_id(int(first), "the VideoId in the S3 key")


def _parse_record(record: Any, index: int, input_prefix: str) -> Job | None:
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
        raise MessageError(f"{where}.s3.object.key must be a string, got {raw_key!r}")
    key = _key(unquote_plus(raw_key), f"{where}.s3.object.key")
    return Job(
        video_id=video_id_from_key(key, input_prefix),
        bucket=_bucket(bucket.get("name"), f"{where}.s3.bucket.name"),
        key=key,
    )


def parse_message(body: str, input_prefix: str = "videos/") -> ParsedMessage:
    """Parse a queue message body. Raises :class:`MessageError` when malformed; the error carries a ``video_id``
    attribute when the body names a valid one, so the failure can be recorded in the video's document."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"message body is not JSON: {exc}") from None
    # An SNS envelope (bucket -> SNS topic -> queue without raw delivery).
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return parse_message(data["Message"], input_prefix)
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
        jobs = [job for i, r in enumerate(records) if (job := _parse_record(r, i, input_prefix)) is not None]
        if not jobs:
            return ParsedMessage(ignored="no ObjectCreated records")
        return ParsedMessage(jobs=jobs)
    return ParsedMessage(jobs=[parse_job(data)])


def parse_job(data: dict[str, Any]) -> Job:
    """Validate a ``{"VideoId": ..., "s3": {"bucket": ..., "key": ...}}`` object."""
    if "VideoId" not in data:
        raise MessageError("message has no 'VideoId' (expected {'VideoId': <int>, 's3': {'bucket', 'key'}})")
    video_id = _video_id(data["VideoId"], "'VideoId'")
    try:
        s3 = data.get("s3")
        if not isinstance(s3, dict):
            raise MessageError(f"message for VideoId {video_id} has no 's3' object with 'bucket' and 'key'")
        force = data.get("force", False)
        if not isinstance(force, bool):
            raise MessageError(f"'force' must be true or false, got {force!r}")
        return Job(video_id, _bucket(s3.get("bucket"), "'s3.bucket'"), _key(s3.get("key"), "'s3.key'"), force)
    except MessageError as exc:
        exc.video_id = video_id  # type: ignore[attr-defined]
        raise


def job_body(video_id: int, bucket: str, key: str, force: bool = False) -> str:
    """The message body of a job (what ``crowdcount submit`` sends)."""
    body: dict[str, Any] = {"VideoId": video_id, "s3": {"bucket": bucket, "key": key}}
    if force:
        body["force"] = True
    return json.dumps(body)


STOP_BODY = json.dumps({"command": "stop"})
