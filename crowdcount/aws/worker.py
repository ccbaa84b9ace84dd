"""The queue worker: SQS -> S3 -> analyze -> S3 result + DynamoDB status, never losing a job.

One message at a time: receive (long poll) -> parse -> record ``running`` -> stream the video to a temporary
file -> analyse -> upload the result file -> record ``done`` -> delete the message. A message is deleted only
after the result is uploaded and ``done`` is recorded; every other path leaves it to be received again:

========================  =========================================================================
what happened             what the worker does with the message
========================  =========================================================================
done / already done       deletes it
malformed body            records ``error`` when it names a VideoId, sends it to the DLQ, deletes it
bad video (corrupt,       records ``error`` (``retryable: false``), sends it to the DLQ, deletes it
missing, too large)       (retrying cannot help, so the queue's attempts are not spent on it)
anything else (AWS down,  records ``error`` (``retryable: true``) and makes it visible again after
model failure, bug)       ``retry_delay_seconds * 2**(attempt-1)``; after the queue's ``maxReceiveCount``
                          receives SQS's redrive policy moves it to the DLQ
stop (SIGTERM/SIGINT)     finishes within ``grace_period_seconds``, else records ``error``
                          ("interrupted") and releases it (visibility 0) for another worker
another worker took over  leaves it alone (the other worker owns it now)
========================  =========================================================================

While a job runs, a heartbeat thread extends the message's visibility every ``heartbeat_seconds`` so that no
other worker receives it; if the worker dies, the message comes back after ``visibility_timeout``.
On ECS the task is also protected from scale-in while a message is handled (:mod:`crowdcount.aws.protection`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from crowdcount.analyzer import VideoAnalyzer, to_document
from crowdcount.analyzer.pipeline import build_processors
from crowdcount.analyzer.result import dumps
from crowdcount.analyzer.video import probe_video
from crowdcount.aws.checkpoint import Checkpointer, checkpoint_key
from crowdcount.aws.errors import error_code, is_aws_exception, is_not_found, to_aws_error
from crowdcount.aws.messages import Job, parse_message
from crowdcount.aws.protection import MAX_MINUTES as MAX_PROTECTION_MINUTES
from crowdcount.aws.protection import TaskProtection
from crowdcount.aws.resources import context_from_config
from crowdcount.aws.session import AwsContext
from crowdcount.aws.status import StatusStore, StepSuperseded, lease_left
from crowdcount.aws.storage import (
    Cancelled,
    S3Object,
    downloaded,
    head_video,
    object_exists,
    remove_stale_temp_files,
    result_key,
    upload_result,
)
from crowdcount.config import Config, build_detectors
from crowdcount.errors import AWSError, ConfigError, CrowdcountError, MessageError, VideoError
from crowdcount.signals import on_stop_signals

logger = logging.getLogger(__name__)

#: SQS's ceiling on a message's visibility timeout.
MAX_VISIBILITY = 43200
#: SQS's answers to a visibility change of a message this worker no longer holds (the lease is lost).
_LOST_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)
#: Consecutive failed receives (after botocore's own retries) before the worker gives up with exit code 3.
MAX_RECEIVE_FAILURES = 5


class _QueueGone(AWSError):
    """The queue disappeared while being served."""


class WorkerFault(CrowdcountError):
    """This worker cannot run jobs (its disk is full, its ``temp_dir`` unusable): not the job's fault. The
    message is handed back for a healthy worker and this one stops with this error (exit code 1)."""


DONE = "done"
BUSY = "busy"
SKIPPED = "skipped"
PERMANENT = "permanent"
TRANSIENT = "transient"
CANCELLED = "cancelled"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class WorkerSettings:
    """What the worker needs from the configuration (see :meth:`from_config`)."""

    queue: str
    dlq: str | None
    bucket: str
    table: str
    step: str = "human_detector"
    input_prefix: str = "videos/"
    result_prefix: str | None = None
    wait_time_seconds: int = 20
    visibility_timeout: int = 300
    heartbeat_seconds: int = 60
    grace_period_seconds: int = 90
    max_video_bytes: int = 5 * 1024**3
    idle_timeout_seconds: float | None = None
    max_jobs: int | None = None
    retry_delay_seconds: int = 10
    temp_dir: str | None = None
    #: On ECS: protect the task from scale-in while a job runs, renewed every half of this (0: never).
    scale_in_protection_minutes: int = 120
    #: Identifies the analyzer configuration: a video done under another one is recomputed.
    config_fingerprint: str = ""
    #: A running job saves its progress to S3 this often (0: never); the next worker resumes from it.
    checkpoint_seconds: int = 60
    #: A job running longer is stopped and recorded as a permanent error.
    max_job_seconds: int = 6 * 3600
    #: Videos with more pixels per frame (width x height) are refused before analysis.
    max_pixels: int = 4096 * 4096
    #: Videos longer than this (seconds, from the container) are refused before analysis.
    max_duration_seconds: int = 4 * 3600
    #: Free disk kept in ``temp_dir`` beyond the video itself; less stops the worker (not the job's fault).
    min_free_disk_bytes: int = 512 * 1024**2

    @classmethod
    def from_config(cls, config: Config) -> WorkerSettings:
        w = config["worker"]
        block = config["human_detection"]
        analysis = {k: block[k] for k in ("detectors", "frame_ratio", "count_smoothing_s", "max_batch_size")}
        if config["faces"]["gallery"]:  # identifying faces changes the result
            analysis["faces"] = config["faces"]
        fingerprint = hashlib.sha256(json.dumps(analysis, sort_keys=True).encode()).hexdigest()[:16]
        settings = cls(
            queue=config.get("aws_queues.human_detection"),
            dlq=config.get("aws_queues.human_detection_dlq") or None,
            bucket=config.get("video_split.output_bucket"),
            table=config.get("dynamodb.table_id"),
            step=block["result_step"],
            input_prefix=config.get("video_split.input_prefix"),
            result_prefix=block["result_prefix"],
            wait_time_seconds=w["wait_time_seconds"],
            visibility_timeout=w["visibility_timeout"],
            heartbeat_seconds=w["heartbeat_seconds"],
            grace_period_seconds=w["grace_period_seconds"],
            max_video_bytes=w["max_video_bytes"],
            idle_timeout_seconds=w["idle_timeout_seconds"],
            max_jobs=w["max_jobs"],
            retry_delay_seconds=w["retry_delay_seconds"],
            temp_dir=w["temp_dir"],
            scale_in_protection_minutes=w["scale_in_protection_minutes"],
            config_fingerprint=fingerprint,
            checkpoint_seconds=w["checkpoint_seconds"],
            max_job_seconds=w["max_job_seconds"],
            max_pixels=w["max_pixels"],
            max_duration_seconds=w["max_duration_seconds"],
            min_free_disk_bytes=w["min_free_disk_bytes"],
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """:class:`ConfigError` when the values cannot work together."""

        def bad(key: str, message: str) -> ConfigError:
            return ConfigError(f"config key 'worker.{key}' {message}")

        if not 0 <= self.wait_time_seconds <= 20:
            raise bad("wait_time_seconds", f"must be in [0, 20] (SQS long polling), got {self.wait_time_seconds}")
        if not 1 <= self.visibility_timeout <= MAX_VISIBILITY:
            raise bad("visibility_timeout", f"must be in [1, {MAX_VISIBILITY}], got {self.visibility_timeout}")
        if not 1 <= self.heartbeat_seconds <= self.visibility_timeout // 2:
            raise bad(
                "heartbeat_seconds",
                f"must be >= 1 and at most half of visibility_timeout ({self.visibility_timeout} // 2), so that a "
                f"failed extension is retried before the message comes back; got {self.heartbeat_seconds}",
            )
        if self.grace_period_seconds < 0:
            raise bad("grace_period_seconds", f"must be >= 0, got {self.grace_period_seconds}")
        if self.max_video_bytes < 1:
            raise bad("max_video_bytes", f"must be >= 1, got {self.max_video_bytes}")
        if not 0 <= self.scale_in_protection_minutes <= MAX_PROTECTION_MINUTES:
            raise bad(
                "scale_in_protection_minutes",
                f"must be in [0, {MAX_PROTECTION_MINUTES}] (0: off), got {self.scale_in_protection_minutes}",
            )
        for key in ("checkpoint_seconds", "min_free_disk_bytes"):
            if getattr(self, key) < 0:
                raise bad(key, f"must be >= 0, got {getattr(self, key)}")
        for key in ("max_job_seconds", "max_pixels", "max_duration_seconds"):
            if getattr(self, key) < 1:
                raise bad(key, f"must be >= 1, got {getattr(self, key)}")
        if self.result_prefix == "":
            raise ConfigError(
                "config key 'human_detection.result_prefix' is empty",
                "use a folder such as 'results/', or null for results beside the videos",
            )
        if self.idle_timeout_seconds is not None and self.idle_timeout_seconds < 0:
            raise bad("idle_timeout_seconds", f"must be >= 0 or null, got {self.idle_timeout_seconds}")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise bad("max_jobs", f"must be >= 1 or null, got {self.max_jobs}")
        if not 0 <= self.retry_delay_seconds <= MAX_VISIBILITY:
            raise bad("retry_delay_seconds", f"must be in [0, {MAX_VISIBILITY}], got {self.retry_delay_seconds}")


@dataclass
class WorkerClients:
    """The boto3 clients the worker uses (injected: AWS, the sandbox or moto's mock alike)."""

    sqs: Any
    s3: Any
    dynamodb: Any
    endpoint_url: str | None = None

    @classmethod
    def from_context(cls, ctx: AwsContext, config: Config) -> WorkerClients:
        return cls(
            sqs=ctx.client("sqs", config["aws_region"]),
            s3=ctx.client("s3", config["aws_region"]),
            dynamodb=ctx.client("dynamodb", config.get("dynamodb.region")),
            endpoint_url=ctx.endpoint_url,
        )


@dataclass
class WorkerStats:
    """What a worker did before it stopped."""

    received: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    malformed: int = 0
    superseded: int = 0
    released: int = 0
    deferred: int = 0
    stop_reason: str = ""

    @property
    def handled(self) -> int:
        """Messages handled (all but stop commands and messages released at a stop): what ``max_jobs`` counts."""
        return self.done + self.skipped + self.failed + self.malformed + self.superseded + self.deferred

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _JobContext:
    """One received message being worked on."""

    message: dict[str, Any]
    attempt: int
    #: Set when the job must stop (shutdown grace period over).
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Set when the job is over (ends the heartbeat).
    finished: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    heartbeat: threading.Thread | None = None
    #: The job being run: (VideoId, run_id), for the lease renewals.
    job: tuple[int, str] | None = None
    #: Why the job lost its lease (message or DynamoDB), when it did: it stops and leaves the video alone.
    lease_lost: str | None = None
    #: Set when the job ran past ``max_job_seconds``.
    timed_out: bool = False
    #: monotonic time until which the message's visibility is known to hold.
    visible_until: float = 0.0

    @property
    def receipt(self) -> str:
        return self.message["ReceiptHandle"]

    @property
    def message_id(self) -> str:
        return self.message.get("MessageId", "")


def default_worker_id() -> str:
    """``host:pid``: recorded in the document so that one can see which worker ran a step."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Serves the human-detection queue until stopped (see the module docstring for what happens to messages).

    Args:
        clients: the SQS, S3 and DynamoDB clients.
        settings: queue and table names, timeouts and shutdown policies.
        analyzer: the :class:`VideoAnalyzer`, or a function building it (called once, after the start-up
            checks, so that a worker that cannot reach AWS fails before loading models).
        worker_id: recorded in the document (default ``host:pid``).
    """

    def __init__(
        self,
        clients: WorkerClients,
        settings: WorkerSettings,
        analyzer: VideoAnalyzer | Callable[[], VideoAnalyzer],
        worker_id: str | None = None,
        protection: TaskProtection | None = None,
    ) -> None:
        settings.validate()
        self.clients = clients
        self.settings = settings
        #: ECS task scale-in protection while a message is handled (None: off, e.g. not on ECS).
        self.protection = protection
        self._analyzer_source = analyzer
        self.analyzer: VideoAnalyzer | None = analyzer if isinstance(analyzer, VideoAnalyzer) else None
        self.worker_id = worker_id or default_worker_id()
        self.status = StatusStore(clients.dynamodb, settings.table, settings.step)
        self.stats = WorkerStats()
        self.queue_url = ""
        self.dlq_url: str | None = None
        self.max_receive_count: int | None = None
        #: Whether the queue has a redrive policy (``None``: unknown, not allowed to read it).
        self.has_redrive: bool | None = None
        # Re-entrant: request_stop() also runs from signal handlers, i.e. in the main thread, possibly while
        # the main thread holds the lock.
        self._lock = threading.RLock()
        self._stop_logged = False
        self._stopping = False
        self._deadline: float | None = None
        self._current: _JobContext | None = None
        self._wake = threading.Event()
        #: Prometheus job metrics (:class:`crowdcount.aws.metrics.WorkerMetrics`), when served.
        self.metrics: Any | None = None
        #: Set when this worker cannot go on (see :class:`WorkerFault`); :meth:`run` raises it.
        self.fault: WorkerFault | None = None
        #: A file touched at every receive and heartbeat, for a container HEALTHCHECK (``CROWDCOUNT_HEALTH_FILE``).
        self.health_file: str | None = os.environ.get("CROWDCOUNT_HEALTH_FILE") or None

    @classmethod
    def from_config(cls, config: Config, ctx: AwsContext | None = None, endpoint_url: str | None = None) -> Worker:
        """A worker for ``config``: clients from ``ctx`` (default: the config's region and endpoint) and the
        analyzer of the config's ``human_detection`` block, built lazily."""
        ctx = ctx or context_from_config(config, endpoint_url)
        block = config["human_detection"]

        def build() -> VideoAnalyzer:
            from crowdcount.aws.gallery import face_processors  # faces.gallery set: identify faces too

            detectors = build_detectors(block["detectors"])
            processors = [*build_processors(config["tracking"], detectors), *face_processors(config, ctx)]
            return VideoAnalyzer.from_config(block, detectors, processors)

        settings = WorkerSettings.from_config(config)
        protection = TaskProtection.from_environ(settings.scale_in_protection_minutes)
        return cls(WorkerClients.from_context(ctx, config), settings, build, protection=protection)

    # -- logging -------------------------------------------------------------------------------------
    def _log(
        self, level: int, event: str, job: Job | None = None, ctx: _JobContext | None = None, **fields: Any
    ) -> None:
        """One structured line: ``event`` plus video id, attempt and ``fields`` (as ``extra`` for JSON logs)."""
        data: dict[str, Any] = {"event": event}
        if job is not None:
            data["video_id"] = job.video_id
            data["s3_uri"] = job.s3_uri
        if ctx is not None:
            data["attempt"] = ctx.attempt
            data["message_id"] = ctx.message_id
        data.update({k: v for k, v in fields.items() if v is not None})
        text = " ".join(f"{k}={v}" for k, v in data.items() if k != "event")
        logger.log(level, "%s %s", event, text, extra=data)

    # -- start-up ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Check that the queue, the bucket and the table answer; :class:`AWSError` (exit code 3) otherwise.

        Only calls the least-privilege task role allows are required (``GetQueueUrl``, ``ListBucket`` on the
        input prefix, ``GetItem``). The DLQ is found from the queue's redrive policy (``GetQueueAttributes``),
        else by name; when that is not allowed, bad messages are left to the redrive policy instead of being
        sent to the DLQ at once (see :meth:`_dead_letter`)."""
        s = self.settings
        endpoint = self.clients.endpoint_url
        sqs = self.clients.sqs
        try:
            self.queue_url = sqs.get_queue_url(QueueName=s.queue)["QueueUrl"]
        except Exception as exc:
            if is_not_found(exc):
                raise AWSError(
                    f"queue {s.queue!r} does not exist", "create it, or start `crowdcount sandbox`"
                ) from None
            raise to_aws_error(exc, f"opening queue {s.queue!r}", endpoint) from None
        dlq_name = s.dlq
        try:
            attributes = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])
            redrive_text = attributes.get("Attributes", {}).get("RedrivePolicy")
            self.has_redrive = bool(redrive_text)
            if redrive_text:
                redrive = json.loads(redrive_text)
                dlq_name = str(redrive["deadLetterTargetArn"]).rsplit(":", 1)[-1]
                self.max_receive_count = int(redrive["maxReceiveCount"])
            else:
                logger.warning("queue %s has no redrive policy: failing jobs are retried until they expire", s.queue)
        except Exception as exc:
            if not is_aws_exception(exc):
                raise
            logger.warning(
                "cannot read the redrive policy of queue %s (%s): assuming it has one",
                s.queue,
                error_code(exc) or type(exc).__name__,
            )
        if dlq_name:
            try:
                self.dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
            except Exception as exc:
                if not is_aws_exception(exc):
                    raise
                logger.warning(
                    "cannot open the dead-letter queue %s (%s): bad messages are left to the queue's redrive policy",
                    dlq_name,
                    error_code(exc) or type(exc).__name__,
                )
        try:
            self.clients.s3.list_objects_v2(Bucket=s.bucket, Prefix=s.input_prefix, MaxKeys=1)
        except Exception as exc:
            if is_not_found(exc):
                raise AWSError(f"bucket {s.bucket!r} does not exist", "check video_split.output_bucket") from None
            raise to_aws_error(exc, f"opening bucket {s.bucket!r}", endpoint) from None
        try:
            self.clients.dynamodb.get_item(
                TableName=s.table, Key={"VideoId": {"N": "-1"}}, ProjectionExpression="VideoId"
            )
        except Exception as exc:
            if is_not_found(exc):
                raise AWSError(f"table {s.table!r} does not exist", "check dynamodb.table_id and region") from None
            if error_code(exc) == "ValidationException":
                raise to_aws_error(
                    exc, f"opening table {s.table!r}", endpoint, "its key must be VideoId, a number"
                ) from None
            raise to_aws_error(exc, f"opening table {s.table!r}", endpoint) from None

    def _ensure_analyzer(self) -> VideoAnalyzer:
        if self.analyzer is None:
            source = self._analyzer_source
            self.analyzer = source if isinstance(source, VideoAnalyzer) else source()
        return self.analyzer

    # -- stopping ------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested", immediate: bool = False) -> None:
        """Stop receiving; a job in progress gets ``grace_period_seconds`` to finish (none when ``immediate``
        or on a second request), then it is cancelled and its message released. Safe from signal handlers."""
        with self._lock:
            again = self._stopping
            self._stopping = True
            if not again:
                self.stats.stop_reason = reason
            if self._current is not None:
                grace = 0 if (immediate or again) else self.settings.grace_period_seconds
                deadline = time.monotonic() + grace
                self._deadline = deadline if self._deadline is None else min(self._deadline, deadline)
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, handle_signals: bool = False) -> WorkerStats:
        """Check AWS, load the models, then serve the queue until a shutdown policy or a stop; returns the stats.
        With ``handle_signals`` (main thread only), SIGTERM and SIGINT request a stop (see :meth:`request_stop`).
        Raises :class:`AWSError` when AWS cannot be reached (at start, or persistently while running)."""
        self.check()
        folder = self._temp_dir()
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"worker.temp_dir {folder!r} is not a writable folder", "create it, or fix the key")
        remove_stale_temp_files(self.settings.temp_dir)
        analyzer = self._ensure_analyzer()
        # Flags only in the handler: no logging or I/O (the main thread may be in the middle of a write).
        with on_stop_signals(self.request_stop) if handle_signals else contextlib.nullcontext():
            analyzer.load()
            self._log(
                logging.INFO,
                "worker started",
                queue=self.settings.queue,
                dlq=self.dlq_url,
                max_receive_count=self.max_receive_count,
                worker=self.worker_id,
                scale_in_protection=self.protection is not None,
            )
            self._loop()
        self._log(logging.INFO, "worker stopped", reason=self.stats.stop_reason, **self._stats_fields())
        if self.fault is not None:
            raise self.fault
        return self.stats

    def _touch_health(self) -> None:
        if self.health_file:
            try:
                with open(self.health_file, "a"):
                    pass
                os.utime(self.health_file)
            except OSError as exc:
                logger.debug("cannot touch the health file %s: %s", self.health_file, exc)

    def _stats_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.stats.to_dict().items() if k != "stop_reason"}

    def _loop(self) -> None:
        s = self.settings
        last_activity = time.monotonic()
        failures = 0
        while not self._stopping:
            self._touch_health()
            if s.max_jobs is not None and self.stats.handled >= s.max_jobs:
                self.request_stop("max-jobs")
                break
            wait = s.wait_time_seconds
            if s.idle_timeout_seconds is not None:
                remaining = s.idle_timeout_seconds - (time.monotonic() - last_activity)
                if remaining <= 0:
                    self.request_stop("idle-timeout")
                    break
                wait = min(wait, max(0, math.ceil(remaining)))
            try:
                messages = self._receive(wait)
                failures = 0
            except _QueueGone:
                raise
            except AWSError as exc:
                failures += 1
                if failures >= MAX_RECEIVE_FAILURES:
                    raise
                delay = min(30.0, 2.0**failures)
                logger.warning("%s; retrying in %.0fs (%d/%d)", exc, delay, failures, MAX_RECEIVE_FAILURES)
                self._wake.wait(delay)
                self._wake.clear()
                continue
            for message in messages:
                if self._stopping:
                    self._change_visibility(message["ReceiptHandle"], 0)
                    self.stats.released += 1
                    continue
                self._handle(message)
                if self.fault is not None:
                    self.request_stop(f"worker fault: {self.fault.message}", immediate=True)
            if messages:
                last_activity = time.monotonic()

    def _receive(self, wait: int) -> list[dict[str, Any]]:
        try:
            response = self.clients.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.settings.visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as exc:
            if is_not_found(exc):
                raise _QueueGone(f"queue {self.settings.queue!r} does not exist (deleted while serving it)") from None
            if is_aws_exception(exc):
                raise to_aws_error(
                    exc, f"receiving from queue {self.settings.queue!r}", self.clients.endpoint_url
                ) from None
            raise
        messages = response.get("Messages", [])
        self.stats.received += len(messages)
        if self.metrics is not None and messages:
            self.metrics.received(messages)
        return messages

    # -- one message ---------------------------------------------------------------------------------
    def _handle(self, message: dict[str, Any]) -> None:
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        ctx = _JobContext(message, attempt)
        ctx.visible_until = time.monotonic() + self.settings.visibility_timeout
        with contextlib.suppress(OSError):  # a worker killed beside this one may have left a video behind
            remove_stale_temp_files(self.settings.temp_dir)
        with self._lock:
            self._current = ctx
            self._deadline = None
            if self._stopping:  # a stop arrived between the receive and now
                self._deadline = time.monotonic() + self.settings.grace_period_seconds
        ctx.heartbeat = threading.Thread(target=self._heartbeat, args=(ctx,), name="crowdcount-heartbeat", daemon=True)
        ctx.heartbeat.start()
        before = self.stats.to_dict()
        if self.metrics is not None:
            self.metrics.busy.set(1)
        if self.protection is not None:
            self.protection.enable()
        try:
            self._handle_body(ctx)
        finally:
            if self.metrics is not None:
                self.metrics.busy.set(0)
                self.metrics.handled(before, self.stats.to_dict(), time.monotonic() - ctx.started)
            with self._lock:
                self._current = None
                self._deadline = None
            self._end_heartbeat(ctx)  # before the protection goes: the heartbeat renews it
            if self.protection is not None:
                self.protection.disable()

    @staticmethod
    def _end_heartbeat(ctx: _JobContext) -> None:
        """Stop extending the lease (before the message is deleted, released or dead-lettered)."""
        ctx.finished.set()
        if ctx.heartbeat is not None and ctx.heartbeat is not threading.current_thread():
            ctx.heartbeat.join(timeout=10)

    def _handle_body(self, ctx: _JobContext) -> None:
        body = ctx.message.get("Body", "")
        s = self.settings
        try:
            parsed = parse_message(body, s.input_prefix, s.result_prefix, s.step)
        except MessageError as exc:
            self._malformed(ctx, exc)
            return
        except Exception as exc:  # a bug in parsing must not kill the worker (and the next one) on this body
            logger.exception("unexpected failure parsing message %s", ctx.message_id)
            self._malformed(ctx, MessageError(f"message body cannot be parsed ({type(exc).__name__})"))
            return
        if parsed.stop:
            self._delete(ctx)
            self._log(logging.INFO, "stop command received", ctx=ctx)
            self.request_stop("stop command")
            return
        if parsed.ignored:
            self._delete(ctx)
            self._log(logging.INFO, "message ignored", ctx=ctx, reason=parsed.ignored)
            return
        outcomes = []
        for job in parsed.jobs:
            outcome, reason = self._run_job(job, ctx)
            outcomes.append((outcome, reason))
            if outcome in (TRANSIENT, CANCELLED, SUPERSEDED, BUSY):
                break
        kinds = {o for o, _ in outcomes}
        self._end_heartbeat(ctx)
        if BUSY in kinds:  # another message's live run: come back when its lease ends (then done, or stale)
            left = int(next(r for o, r in outcomes if o == BUSY))
            delay = min(MAX_VISIBILITY, left + self.settings.heartbeat_seconds)
            self._change_visibility(ctx.receipt, delay)
            self.stats.deferred += 1
            self._log(logging.WARNING, "message deferred", ctx=ctx, retry_in_s=delay, reason="video running elsewhere")
        elif CANCELLED in kinds:
            self._change_visibility(ctx.receipt, 0)
            self.stats.released += 1
            self._log(logging.WARNING, "message released", ctx=ctx, reason="worker stopping")
        elif SUPERSEDED in kinds:
            self.stats.superseded += 1
            self._log(logging.WARNING, "message left to the worker that took it over", ctx=ctx)
        elif TRANSIENT in kinds:
            delay = min(self.settings.visibility_timeout, self.settings.retry_delay_seconds * 2 ** (ctx.attempt - 1))
            self._change_visibility(ctx.receipt, int(delay))
            self.stats.failed += 1
            final = self.max_receive_count is not None and ctx.attempt >= self.max_receive_count
            self._log(
                logging.WARNING,
                "message left for retry",
                ctx=ctx,
                retry_in_s=int(delay),
                next="dead-letter queue" if final else "retry",
            )
        elif PERMANENT in kinds:
            reason = next(r for o, r in outcomes if o == PERMANENT)
            self._dead_letter(ctx, reason)
            self.stats.failed += 1
        else:
            self._delete(ctx)
            self.stats.done += sum(1 for o, _ in outcomes if o == DONE)
            self.stats.skipped += sum(1 for o, _ in outcomes if o == SKIPPED)

    def _malformed(self, ctx: _JobContext, exc: MessageError) -> None:
        self.stats.malformed += 1
        video_id = getattr(exc, "video_id", None)
        self._log(logging.ERROR, "malformed message", ctx=ctx, video_id=video_id, reason=exc.message)
        if video_id is not None:
            try:
                self.status.record_error_if_idle(
                    video_id,
                    {
                        "reason": f"malformed message: {exc.message}",
                        "error_type": "MessageError",
                        "retryable": False,
                        "message_id": ctx.message_id,
                        "attempt": ctx.attempt,
                        "worker": self.worker_id,
                    },
                )
            except AWSError as err:
                logger.warning("could not record the malformed message of VideoId %s: %s", video_id, err)
        self._dead_letter(ctx, f"malformed message: {exc.message}")

    # -- one job -------------------------------------------------------------------------------------
    def _same_input(self, obj: S3Object | None, job: Job) -> Callable[[dict[str, Any]], bool]:
        def check(entry: dict[str, Any]) -> bool:
            if obj is None or job.force:
                return False
            previous = entry.get("input") or {}
            same = (
                previous.get("bucket") == obj.bucket
                and previous.get("key") == obj.key
                and previous.get("etag") == obj.etag
                and entry.get("config") == self.settings.config_fingerprint
            )
            result = entry.get("result_file") or {}
            if not (same and result.get("bucket") and result.get("key")):
                return False
            try:
                return object_exists(self.clients.s3, result["bucket"], result["key"])
            except AWSError as exc:  # e.g. a role that may write results but not read them: trust the document
                logger.debug("cannot check the result file of VideoId %s: %s", job.video_id, exc)
                return True

        return check

    @staticmethod
    def _failed_redelivery(obj: S3Object | None, ctx: _JobContext) -> Callable[[dict[str, Any]], bool]:
        """Whether an ``error`` entry is this very message's permanent failure on this input (a message left to
        the redrive policy coming back): it is released again rather than recomputed."""

        def check(entry: dict[str, Any]) -> bool:
            return (
                entry.get("retryable") is False
                and bool(ctx.message_id)
                and entry.get("message_id") == ctx.message_id
                and (entry.get("input") or {}).get("etag") == (obj.etag if obj else None)
            )

        return check

    def _run_job(self, job: Job, ctx: _JobContext) -> tuple[str, str]:
        """Run one job; returns ``(outcome, reason)``. Never raises for a job's own failure."""
        s = self.settings
        self._log(logging.INFO, "job received", job, ctx)
        run_id = uuid.uuid4().hex
        started = time.monotonic()
        missing: VideoError | None = None
        obj: S3Object | None = None
        try:
            try:
                obj = head_video(self.clients.s3, job.bucket, job.key)
            except VideoError as exc:
                missing = exc
            entry = {
                "run_id": run_id,
                "attempt": ctx.attempt,
                "worker": self.worker_id,
                "message_id": ctx.message_id,
                "input": obj.to_dict() if obj else {"bucket": job.bucket, "key": job.key},
                "config": s.config_fingerprint,
                "lease_until": round(time.time() + s.visibility_timeout, 3),
            }
            start = self.status.start(
                job.video_id, entry, self._same_input(obj, job), self._failed_redelivery(obj, ctx)
            )
        except Exception as exc:  # the step could not be recorded: nothing ran, retry later
            if not isinstance(exc, AWSError):
                logger.exception("unexpected failure on VideoId %s", job.video_id)
            reason = str(exc) if isinstance(exc, AWSError) else f"{type(exc).__name__}: {exc}"
            self._log(logging.WARNING, "job failed", job, ctx, state="error", reason=reason, retryable=True)
            return TRANSIENT, reason
        if start.busy:
            left = lease_left(start.entry)
            self._log(
                logging.WARNING,
                "job running elsewhere",
                job,
                ctx,
                state="running",
                owner=start.entry.get("worker"),
                lease_left_s=round(left, 1),
            )
            return BUSY, str(math.ceil(left))
        if start.already_failed:
            reason = str(start.entry.get("reason") or "failed")
            self._log(logging.WARNING, "job already failed", job, ctx, state="error", reason=reason)
            return PERMANENT, reason
        if start.already_done:
            self._log(
                logging.INFO,
                "job already done",
                job,
                ctx,
                state="done",
                result_key=(start.entry.get("result_file") or {}).get("key"),
            )
            return SKIPPED, ""
        self._log(logging.INFO, "job running", job, ctx, state="running", run_id=run_id)
        ctx.job = (job.video_id, run_id)
        timings: dict[str, float] = {}
        local_path = ""
        checkpointer: Checkpointer | None = None
        resumed_from = 0
        try:
            if missing is not None:
                raise missing
            assert obj is not None
            self._check_cancel(ctx)
            self._check_disk(obj)
            t = time.monotonic()
            with downloaded(self.clients.s3, obj, s.max_video_bytes, s.temp_dir, ctx.cancel) as path:
                local_path = str(path)
                timings["download_s"] = round(time.monotonic() - t, 3)
                self._check_cancel(ctx)
                self._check_limits(path)
                t = time.monotonic()
                analyzer = self._ensure_analyzer()
                checkpointer = self._checkpointer(job, obj, analyzer)
                saved = checkpointer.load()
                resumed_from = saved.frames if saved is not None else 0
                if resumed_from:
                    self._log(logging.INFO, "job resumed", job, ctx, frames=resumed_from, checkpoint=checkpointer.uri)

                def progress(n: int, total: int) -> None:
                    self._check_cancel(ctx)
                    if checkpointer is not None and checkpointer.due():
                        checkpointer.save()

                originals = analyzer.detectors
                analyzer.detectors = checkpointer.wrap(originals, saved)  # type: ignore[assignment]
                try:
                    result = analyzer.analyze(path, progress=progress)
                finally:
                    analyzer.detectors = originals
                timings["analyze_s"] = round(time.monotonic() - t, 3)
                document = to_document(result)
                _describe_source(document, obj, str(path))
            self._check_cancel(ctx)
            key = result_key(job.key, s.step, job.video_id, s.result_prefix)
            # Still the owner? A superseded run must not overwrite the newer run's result. Renewing (conditional on
            # this run_id) both checks that and gives the upload and the `done` write a fresh lease.
            if ctx.lease_lost:
                raise StepSuperseded(f"lease lost: {ctx.lease_lost}")
            self.status.renew(job.video_id, run_id, s.visibility_timeout)
            t = time.monotonic()
            upload_result(self.clients.s3, job.bucket, key, dumps(document))
            timings["upload_s"] = round(time.monotonic() - t, 3)
            elapsed = round(time.monotonic() - started, 3)
            summary = {
                category: {k: v[k] for k in ("frames_analyzed", "max_count", "mean_count")}
                for category, v in document["summary"].items()
            }
            self.status.finish(
                job.video_id,
                run_id,
                "done",
                {
                    "result_file": {"bucket": job.bucket, "key": key},
                    "resumed_from_frame": resumed_from,
                    "summary": summary,
                    "timings": timings,
                    "elapsed_s": elapsed,
                    "warnings": document["warnings"],
                },
            )
            checkpointer.delete()
            self._log(
                logging.INFO,
                "job done",
                job,
                ctx,
                state="done",
                result_key=key,
                elapsed_s=elapsed,
                frames_decoded=document["video"]["frames_decoded"],
                **timings,
            )
            return DONE, ""
        except StepSuperseded as exc:
            self._log(logging.WARNING, "job superseded", job, ctx, reason=str(exc))
            return SUPERSEDED, str(exc)
        except Cancelled:
            if checkpointer is not None and not ctx.lease_lost:  # the next worker resumes from here
                checkpointer.save()
            if ctx.lease_lost:  # another worker may own the video now: write nothing, leave the message
                self._log(logging.WARNING, "job superseded", job, ctx, reason=f"lease lost: {ctx.lease_lost}")
                return SUPERSEDED, f"lease lost: {ctx.lease_lost}"
            if ctx.timed_out:
                reason = (
                    f"the job ran longer than worker.max_job_seconds ({s.max_job_seconds} s); raise it, or split "
                    "the video"
                )
                self._finish_error(job, ctx, run_id, reason, "JobTimeout", False, started)
                return PERMANENT, reason
            reason = "interrupted: the worker was stopped before the job finished; released for retry"
            self._finish_error(job, ctx, run_id, reason, "Cancelled", True, started)
            return CANCELLED, reason
        except WorkerFault as exc:  # this worker's disk, not the job: hand the message back, stop the worker
            self._finish_error(job, ctx, run_id, str(exc), "WorkerFault", True, started)
            self.fault = exc
            return CANCELLED, str(exc)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise
            fault = WorkerFault(f"the worker cannot write its temporary files in {self._temp_dir()}: {exc}")
            self._finish_error(job, ctx, run_id, str(fault), "WorkerFault", True, started)
            self.fault = fault
            return CANCELLED, str(fault)
        except (VideoError, MessageError) as exc:
            reason = str(exc).replace(local_path, job.s3_uri) if local_path else str(exc)  # name S3, not /tmp
            self._finish_error(job, ctx, run_id, reason, type(exc).__name__, False, started)
            return PERMANENT, reason
        except Exception as exc:  # AWS, the model, a bug: retry, then the DLQ via the redrive policy
            if not isinstance(exc, AWSError):
                logger.exception("unexpected failure on VideoId %s", job.video_id)
            reason = str(exc) if isinstance(exc, AWSError) else f"{type(exc).__name__}: {exc}"
            self._finish_error(job, ctx, run_id, reason, type(exc).__name__, True, started)
            return TRANSIENT, reason

    def _finish_error(
        self, job: Job, ctx: _JobContext, run_id: str, reason: str, error_type: str, retryable: bool, started: float
    ) -> None:
        elapsed = round(time.monotonic() - started, 3)
        self._log(
            logging.ERROR if not retryable else logging.WARNING,
            "job failed",
            job,
            ctx,
            state="error",
            reason=reason,
            error_type=error_type,
            retryable=retryable,
            elapsed_s=elapsed,
        )
        try:
            self.status.finish(
                job.video_id,
                run_id,
                "error",
                {"reason": reason[:1000], "error_type": error_type, "retryable": retryable, "elapsed_s": elapsed},
            )
        except (StepSuperseded, AWSError) as exc:
            logger.warning("could not record the error of VideoId %s: %s", job.video_id, exc)

    @staticmethod
    def _check_cancel(ctx: _JobContext) -> None:
        if ctx.cancel.is_set():
            raise Cancelled()

    def _checkpointer(self, job: Job, obj: S3Object, analyzer: VideoAnalyzer) -> Checkpointer:
        s = self.settings
        described = json.dumps([d.describe() for d in analyzer.detectors], sort_keys=True, default=str)
        identity = {
            "etag": obj.etag,
            "size": obj.size,
            "config": s.config_fingerprint,
            "frame_ratio": analyzer.frame_ratio,
            "detectors": hashlib.sha256(described.encode()).hexdigest()[:16],
        }
        key = checkpoint_key(job.key, s.step, job.video_id, s.result_prefix)
        return Checkpointer(self.clients.s3, job.bucket, key, identity, s.checkpoint_seconds)

    def _temp_dir(self) -> str:
        return self.settings.temp_dir or tempfile.gettempdir()

    def _check_disk(self, obj: S3Object) -> None:
        """:class:`WorkerFault` when ``temp_dir`` lacks room for the video plus ``min_free_disk_bytes``."""
        folder = self._temp_dir()
        try:
            free = shutil.disk_usage(folder).free
        except OSError as exc:
            raise WorkerFault(f"worker.temp_dir {folder!r} cannot be used: {exc}", "fix worker.temp_dir") from None
        needed = obj.size + self.settings.min_free_disk_bytes
        if free < needed:
            raise WorkerFault(
                f"{folder} has {free} bytes free; {obj.uri} needs {obj.size} plus "
                f"worker.min_free_disk_bytes ({self.settings.min_free_disk_bytes})",
                "free disk space, or point worker.temp_dir at a larger volume",
            )

    def _check_limits(self, path: Any) -> None:
        """:class:`VideoError` (permanent) for a video over ``max_pixels`` or ``max_duration_seconds``: such a
        video would be OOM-killed or run for ever on every receive."""
        s = self.settings
        info = probe_video(path)
        pixels = info.width * info.height
        if pixels > s.max_pixels:
            raise VideoError(
                f"video {info.path} is {info.width}x{info.height} ({pixels} pixels a frame), over "
                f"worker.max_pixels ({s.max_pixels})",
                "downscale it, or raise worker.max_pixels on workers with more memory",
            )
        if info.duration_s > s.max_duration_seconds:
            raise VideoError(
                f"video {info.path} lasts {info.duration_s:.0f} s, over worker.max_duration_seconds "
                f"({s.max_duration_seconds})",
                "split it, or raise worker.max_duration_seconds",
            )

    # -- heartbeat -----------------------------------------------------------------------------------
    def _heartbeat(self, ctx: _JobContext) -> None:
        """Extend the message's visibility every ``heartbeat_seconds``; cancel the job when the stop deadline
        passes. Ends when the job does (``ctx.cancel`` set by :meth:`_handle`)."""
        interval = self.settings.heartbeat_seconds
        next_beat = time.monotonic() + interval
        while not ctx.finished.is_set():
            now = time.monotonic()
            deadline = self._deadline
            if deadline is not None and not self._stop_logged:
                self._stop_logged = True
                self._log(
                    logging.WARNING,
                    "stop requested",
                    ctx=ctx,
                    reason=self.stats.stop_reason,
                    grace_s=round(max(0.0, deadline - now), 1),
                )
            if deadline is not None and now >= deadline and not ctx.cancel.is_set() and self._current is ctx:
                logger.warning(
                    "grace period over: cancelling the job in progress",
                    extra={"event": "cancel", "message_id": ctx.message_id},
                )
                ctx.cancel.set()
            if ctx.job is not None and now - ctx.started > self.settings.max_job_seconds and not ctx.cancel.is_set():
                ctx.timed_out = True
                ctx.cancel.set()
            if now >= next_beat:
                self._touch_health()
                self._extend(ctx)
                self._renew_lease(ctx)
                if ctx.lease_lost is None and ctx.visible_until and now >= ctx.visible_until - 1:
                    self._lose_lease(ctx, "the message's visibility could not be extended before it lapsed")
                next_beat = now + interval
                if self.protection is not None and self.protection.renew_due():
                    self.protection.enable()
            ctx.finished.wait(min(max(next_beat - now, 0.01), 0.25))

    def _lose_lease(self, ctx: _JobContext, reason: str) -> None:
        """The job no longer holds its message or its video: stop it (another worker may run it now)."""
        if ctx.lease_lost is None:
            ctx.lease_lost = reason
            logger.warning(
                "lease lost on message %s (%s): stopping the job",
                ctx.message_id,
                reason,
                extra={"event": "lease lost", "message_id": ctx.message_id},
            )
        ctx.cancel.set()

    def _renew_lease(self, ctx: _JobContext) -> None:
        if ctx.job is None or ctx.lease_lost:
            return
        video_id, run_id = ctx.job
        try:
            self.status.renew(video_id, run_id, self.settings.visibility_timeout)
        except StepSuperseded as exc:
            self._lose_lease(ctx, str(exc))
        except Exception as exc:  # DynamoDB unreachable: the next beat tries again; check_owner decides at the end
            logger.warning("could not renew the lease of VideoId %s: %s", video_id, exc)

    def _extend(self, ctx: _JobContext) -> None:
        try:
            self.clients.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=ctx.receipt, VisibilityTimeout=self.settings.visibility_timeout
            )
            ctx.visible_until = time.monotonic() + self.settings.visibility_timeout
            logger.debug("visibility of message %s extended", ctx.message_id)
        except Exception as exc:
            code = error_code(exc)
            if code in _LOST_RECEIPT_CODES:
                self._lose_lease(ctx, f"the message is no longer this worker's ({code})")
                return
            logger.warning(
                "could not extend the visibility of message %s (%s): %s",
                ctx.message_id,
                code or type(exc).__name__,
                "another worker may receive it" if code else exc,
                extra={"event": "heartbeat failed", "message_id": ctx.message_id},
            )

    # -- acknowledging -------------------------------------------------------------------------------
    def _delete(self, ctx: _JobContext) -> None:
        self._end_heartbeat(ctx)
        try:
            self.clients.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=ctx.receipt)
        except Exception as exc:
            # The message comes back; a job already done is then acknowledged without recomputing.
            logger.warning("could not delete message %s: %s", ctx.message_id, exc)

    def _change_visibility(self, receipt: str, seconds: int) -> None:
        try:
            self.clients.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            )
        except Exception as exc:
            logger.warning("could not change a message's visibility to %ss: %s", seconds, exc)

    def _dead_letter(self, ctx: _JobContext, reason: str) -> None:
        """Send the message to the DLQ (with the reason as attributes), then delete it: in that order, so a
        crash in between duplicates it rather than losing it.

        Without a DLQ this worker may write to (not found, or not allowed: a least-privilege role need not
        grant ``sqs:SendMessage`` on it), the message is made visible again at once and the queue's redrive
        policy moves it to the DLQ after ``maxReceiveCount`` receives; meanwhile each redelivery is recognised
        (same message, recorded as a permanent error) and released again without recomputing. Only a queue
        known to have no redrive policy gets the message deleted (logged as dropped)."""
        self._end_heartbeat(ctx)
        if self.dlq_url is not None:
            attributes = {
                "crowdcount-error": {"DataType": "String", "StringValue": reason[:1000] or "error"},
                "crowdcount-source-message-id": {"DataType": "String", "StringValue": ctx.message_id or "?"},
                "crowdcount-attempt": {"DataType": "Number", "StringValue": str(ctx.attempt)},
                "crowdcount-worker": {"DataType": "String", "StringValue": self.worker_id},
            }
            try:
                self.clients.sqs.send_message(
                    QueueUrl=self.dlq_url,
                    MessageBody=ctx.message.get("Body") or "(empty)",
                    MessageAttributes=attributes,
                )
            except Exception as exc:
                logger.error(
                    "could not send message %s to the dead-letter queue (%s): leaving it to the redrive policy",
                    ctx.message_id,
                    error_code(exc) or exc,
                )
            else:
                self._delete(ctx)
                self._log(logging.WARNING, "message sent to the dead-letter queue", ctx=ctx, reason=reason)
                return
        if self.has_redrive is False:
            self._delete(ctx)
            self._log(logging.ERROR, "message dropped", ctx=ctx, reason=f"{reason} (no dead-letter queue, no redrive)")
            return
        self._change_visibility(ctx.receipt, 0)
        self._log(logging.WARNING, "message left to the redrive policy", ctx=ctx, reason=reason)


def _describe_source(document: dict[str, Any], obj: S3Object, local_path: str) -> None:
    """Name the S3 object, not the temporary file, in a result document."""
    video = document["video"]
    video["path"] = obj.uri
    video["name"] = obj.key.rsplit("/", 1)[-1]
    video["s3"] = {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag}
    document["warnings"] = [w.replace(local_path, obj.uri) for w in document["warnings"]]
