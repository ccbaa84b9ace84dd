"""Submitting videos to the worker and reading back their status and results (``crowdcount submit``,
``status``, ``results``)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowdcount.aws.errors import is_aws_exception, is_not_found, to_aws_error
from crowdcount.aws.lease import queue_url
from crowdcount.aws.messages import MAX_VIDEO_ID, job_body, parse_job
from crowdcount.aws.session import AwsContext
from crowdcount.aws.settings import over_limits
from crowdcount.aws.status import StatusStore
from crowdcount.config import Config
from crowdcount.errors import ConfigError, CrowdcountError, MessageError, VideoError

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Submitted:
    """Where a submitted video went and the message that asks for its analysis."""

    video_id: int
    bucket: str
    key: str
    queue: str
    message_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "VideoId": self.video_id,
            "s3": {"bucket": self.bucket, "key": self.key},
            "queue": self.queue,
            "message_id": self.message_id,
        }


def video_key(input_prefix: str, video_id: int, filename: str) -> str:
    """The S3 key of a submitted video: ``<input_prefix><VideoId>/video/<name>``, so that its result lands in
    ``<input_prefix><VideoId>/human_detector/`` (see :func:`crowdcount.aws.storage.result_key`)."""
    name = _UNSAFE.sub("_", Path(filename).name).strip("._") or "video"
    return f"{input_prefix}{video_id}/video/{name}"


def _check_video_id(video_id: int) -> None:
    if not 0 <= video_id <= MAX_VIDEO_ID:
        raise ConfigError(f"--video-id must be between 0 and {MAX_VIDEO_ID}, got {video_id}")


def _check_worker_limits(config: Config, path: Path) -> None:
    """:class:`VideoError` for what is no video (a still image...), :class:`ConfigError` for a video over the
    worker's ``max_pixels`` or ``max_duration_seconds``: the worker would dead-letter it after the download."""
    from crowdcount.analyzer.video import probe_video  # (OpenCV) only here

    over = over_limits(probe_video(path), config.get("worker.max_pixels"), config.get("worker.max_duration_seconds"))
    if over is not None:
        setting, why = over
        hint = {"max_pixels": "downscale it", "max_duration_seconds": "split it"}[setting]
        raise ConfigError(
            f"{str(path)!r} {why}: the worker would refuse it", f"{hint}, or raise worker.{setting} for the workers too"
        )


def submit_video(
    ctx: AwsContext,
    config: Config,
    path: str | os.PathLike[str],
    video_id: int,
    key: str | None = None,
    force: bool = False,
    probe: bool = True,
) -> Submitted:
    """Upload ``path`` to ``video_split.output_bucket`` (streamed, multipart when large), create the video's
    document (keeping any steps it has) and enqueue the job on ``aws_queues.human_detection``.
    :class:`ConfigError` (nothing uploaded) for a video over ``worker.max_video_bytes``; with ``probe`` (OpenCV
    reads the video's header), :class:`VideoError` for what is no video and :class:`ConfigError` for a video over
    ``worker.max_pixels`` or ``max_duration_seconds``: the worker would dead-letter them after the download."""
    _check_video_id(video_id)
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{str(path)!r} is not a file", "give the path of a video")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"{str(path)!r} is empty (0 bytes)")
    limit = config.get("worker.max_video_bytes")
    if size > limit:  # the worker refuses it unread (dead-lettered): said now, nothing uploaded
        raise ConfigError(
            f"{str(path)!r} is {size} bytes, over worker.max_video_bytes ({limit}): the worker would refuse it",
            "split the video, or raise worker.max_video_bytes for the workers too",
        )
    if probe:
        _check_worker_limits(config, path)
    bucket = config.get("video_split.output_bucket")
    queue = config.get("aws_queues.human_detection")
    if key:  # one the worker would refuse as malformed (and dead-letter) is refused here, before the upload
        try:
            parse_job(
                {"VideoId": video_id, "s3": {"bucket": bucket, "key": key}}, config.get("video_split.input_prefix")
            )
        except MessageError as exc:
            raise ConfigError(f"--key: {exc.message}", exc.hint) from None
    key = key or video_key(config.get("video_split.input_prefix"), video_id, path.name)
    s3 = ctx.client("s3", config["aws_region"])
    sqs = ctx.client("sqs", config["aws_region"])
    store = StatusStore(ctx.client("dynamodb", config.get("dynamodb.region")), config.get("dynamodb.table_id"))
    url = queue_url(sqs, queue, ctx.endpoint_url, "start `crowdcount sandbox`, or check variables.json")
    store.get_document(video_id)  # the table is there: no video is uploaded that could get no document
    try:
        s3.upload_file(str(path), bucket, key)
    except Exception as exc:
        raise to_aws_error(exc, f"uploading to s3://{bucket}/{key}", ctx.endpoint_url) from None
    store.ensure_document(video_id, {"bucket": bucket, "key": key})
    try:
        message_id = sqs.send_message(QueueUrl=url, MessageBody=job_body(video_id, bucket, key, force))["MessageId"]
    except Exception as exc:
        raise to_aws_error(exc, f"sending the job to queue {queue!r}", ctx.endpoint_url) from None
    logger.info("submitted VideoId %s as s3://%s/%s (message %s)", video_id, bucket, key, message_id)
    return Submitted(video_id, bucket, key, queue, message_id)


def get_document(ctx: AwsContext, config: Config, video_id: int) -> dict[str, Any]:
    """The video's DynamoDB document (plain Python). :class:`CrowdcountError` when there is none."""
    _check_video_id(video_id)
    table = config.get("dynamodb.table_id")
    store = StatusStore(ctx.client("dynamodb", config.get("dynamodb.region")), table)
    document = store.get_document(video_id)
    if document is None:
        raise CrowdcountError(f"no document for VideoId {video_id} in table {table!r}", "submit the video first")
    return document


def find_step(document: dict[str, Any], step: str) -> dict[str, Any] | None:
    """The entry of ``step`` in a document's ``process_steps``."""
    for entry in document.get("process_steps") or []:
        if isinstance(entry, dict) and entry.get("step") == step:
            return entry
    return None


def fetch_result(
    ctx: AwsContext,
    config: Config,
    video_id: int,
    destination: str | os.PathLike[str] | None = None,
    step: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Download the result file of ``step`` (default ``human_detection.result_step``) for ``video_id`` to
    ``destination`` (a file, or a folder; default ``crowdcount_results/``). Returns the step entry and the path.
    :class:`CrowdcountError` when the step is not done."""
    step = step or config.get("human_detection.result_step")
    document = get_document(ctx, config, video_id)
    entry = find_step(document, step)
    if entry is None:
        raise CrowdcountError(f"VideoId {video_id} has no {step!r} step yet", "is a worker running?")
    if entry.get("state") != "done":
        detail = f": {entry['reason']}" if entry.get("reason") else ""
        raise CrowdcountError(f"step {step!r} of VideoId {video_id} is {entry.get('state')}{detail}")
    result = entry.get("result_file")
    bucket, key = (result.get("bucket"), result.get("key")) if isinstance(result, dict) else (None, None)
    if not (isinstance(bucket, str) and isinstance(key, str) and bucket and key):
        raise CrowdcountError(f"step {step!r} of VideoId {video_id} is done but names no result file")
    target = Path(destination) if destination is not None else Path("crowdcount_results")
    if target.is_dir() or destination is None or str(destination).endswith(("/", os.sep)):
        name = key.rsplit("/", 1)[-1]
        # a key ending in "/" (or "..") names no file: the folder itself would become the file
        target = target / (name if name not in ("", ".", "..") else f"{step}-{video_id}")
    target.parent.mkdir(parents=True, exist_ok=True)
    s3 = ctx.client("s3", config["aws_region"])
    partial = target.with_name(f".{target.name}.part")
    try:
        s3.download_file(bucket, key, str(partial))
        partial.replace(target)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        if is_not_found(exc):
            raise CrowdcountError(f"result file s3://{bucket}/{key} does not exist (deleted?)") from None
        if is_aws_exception(exc):
            raise to_aws_error(exc, f"downloading s3://{bucket}/{key}", ctx.endpoint_url) from None
        raise
    return entry, target
