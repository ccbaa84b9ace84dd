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

:class:`Worker` is the loop that composes the parts: the queue lease (:mod:`crowdcount.aws.lease`), the job
runner (:mod:`crowdcount.aws.job`: S3, the pipeline, the status; no SQS), the decision table
(:func:`crowdcount.aws.decide.decide`: the table above, as one pure function) and the shutdown and back-off
policies (:mod:`crowdcount.aws.policies`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from crowdcount.analyzer import VideoAnalyzer
from crowdcount.analyzer.pipeline import PipelineOverrides, build_pipeline
from crowdcount.aws.decide import Action, Kind, Outcome, combine, decide
from crowdcount.aws.errors import error_code, is_not_found, to_aws_error
from crowdcount.aws.job import JobContext, JobRunner, WorkerFault
from crowdcount.aws.joblog import JOB_LOG as logger
from crowdcount.aws.joblog import log_event
from crowdcount.aws.lease import Heartbeat, Lease, MessageQueue, QueueGone
from crowdcount.aws.messages import parse_message
from crowdcount.aws.policies import ReceiveBackoff, RetryPolicy, ShutdownPolicy, StopRequest
from crowdcount.aws.protection import TaskProtection
from crowdcount.aws.resources import context_from_config
from crowdcount.aws.session import AwsContext
from crowdcount.aws.settings import MAX_VISIBILITY, WorkerSettings
from crowdcount.aws.status import StatusStore
from crowdcount.aws.storage import remove_stale_temp_files
from crowdcount.config import Config
from crowdcount.errors import AWSError, ConfigError, MessageError
from crowdcount.signals import on_stop_signals

__all__ = [
    "MAX_RECEIVE_FAILURES",
    "MAX_VISIBILITY",
    "Worker",
    "WorkerClients",
    "WorkerFault",
    "WorkerSettings",
    "WorkerStats",
    "default_worker_id",
]

#: Consecutive failed receives (after botocore's own retries) before the worker gives up with exit code 3.
MAX_RECEIVE_FAILURES = 5


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
        protection: ECS task scale-in protection while a message is handled (None: off, e.g. not on ECS).
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
        self.protection = protection
        self.worker_id = worker_id or default_worker_id()
        self.status = StatusStore(clients.dynamodb, settings.table, settings.step)
        self.stats = WorkerStats()
        self.retry_policy = RetryPolicy.from_settings(settings)
        self.shutdown = ShutdownPolicy.from_settings(settings)
        self.receive_backoff = ReceiveBackoff(MAX_RECEIVE_FAILURES)
        self.stop = StopRequest(settings.grace_period_seconds)
        #: The queue, once :meth:`check` opened it.
        self.queue: MessageQueue | None = None
        #: The job runner, built by :meth:`run` from the clients of that moment.
        self.jobs: JobRunner | None = None
        self._analyzer_source = analyzer
        self._current: JobContext | None = None
        self._stop_logged = False
        #: Prometheus job metrics (:class:`crowdcount.aws.metrics.WorkerMetrics`), when served.
        self.metrics: Any | None = None
        #: Set when this worker cannot go on (see :class:`WorkerFault`); :meth:`run` raises it.
        self.fault: WorkerFault | None = None
        #: A file touched at every receive and heartbeat, for a container HEALTHCHECK (``CROWDCOUNT_HEALTH_FILE``).
        self.health_file: str | None = os.environ.get("CROWDCOUNT_HEALTH_FILE") or None

    @classmethod
    def from_config(cls, config: Config, ctx: AwsContext | None = None, endpoint_url: str | None = None) -> Worker:
        """A worker for ``config``: clients from ``ctx`` (default: the config's region and endpoint) and the
        analyzer of the config's pipeline (:func:`~crowdcount.analyzer.pipeline.build_pipeline`), built lazily."""
        ctx = ctx or context_from_config(config, endpoint_url)

        def build() -> VideoAnalyzer:  # the pipeline of `analyze` and the upload handler
            from crowdcount.aws.gallery import open_dynamodb_gallery  # noqa: F401  (registers dynamodb://)
            from crowdcount.faces.identify import gallery_stage

            return build_pipeline(config, PipelineOverrides(), gallery_stage(config, {"aws": ctx})).analyzer()

        settings = WorkerSettings.from_config(config)
        protection = TaskProtection.from_environ(settings.scale_in_protection_minutes)
        return cls(WorkerClients.from_context(ctx, config), settings, build, protection=protection)

    # -- what the parts know -------------------------------------------------------------------------
    @property
    def analyzer(self) -> VideoAnalyzer | None:
        """The analyzer, once built."""
        if self.jobs is not None:
            return self.jobs.analyzer
        source = self._analyzer_source
        return source if isinstance(source, VideoAnalyzer) else None

    @property
    def queue_url(self) -> str:
        return self.queue.url if self.queue is not None else ""

    @property
    def dlq_url(self) -> str | None:
        return self.queue.dlq_url if self.queue is not None else None

    @property
    def max_receive_count(self) -> int | None:
        return self.queue.max_receive_count if self.queue is not None else None

    @property
    def has_redrive(self) -> bool | None:
        """Whether the queue has a redrive policy (``None``: unknown, not allowed to read it)."""
        return self.queue.has_redrive if self.queue is not None else None

    # -- start-up ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Check that the queue, the bucket and the table answer; :class:`AWSError` (exit code 3) otherwise.

        Only calls the least-privilege task role allows are required (``GetQueueUrl``, ``ListBucket`` on the
        input prefix, ``GetItem``). The DLQ is found from the queue's redrive policy (``GetQueueAttributes``),
        else by name; when that is not allowed, bad messages are left to the redrive policy instead of being
        sent to the DLQ at once (see :meth:`crowdcount.aws.lease.Lease.dead_letter`)."""
        s = self.settings
        endpoint = self.clients.endpoint_url
        queue = MessageQueue(self.clients.sqs, s.queue, s.dlq, s.visibility_timeout, endpoint)
        queue.open()
        self.queue = queue
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

    # -- stopping ------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested", immediate: bool = False) -> None:
        """Stop receiving; a job in progress gets ``grace_period_seconds`` to finish (none when ``immediate``
        or on a second request), then it is cancelled and its message released. Safe from signal handlers."""
        with self.stop.lock:
            self.stop.request(reason, immediate, busy=self._current is not None)
            self.stats.stop_reason = self.stop.reason

    @property
    def stopping(self) -> bool:
        return self.stop.requested

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, handle_signals: bool = False) -> WorkerStats:
        """Check AWS, load the models, then serve the queue until a shutdown policy or a stop; returns the stats.
        With ``handle_signals`` (main thread only), SIGTERM and SIGINT request a stop (see :meth:`request_stop`).
        Raises :class:`AWSError` when AWS cannot be reached (at start, or persistently while running)."""
        self.check()
        jobs = JobRunner(self.clients.s3, self.status, self.settings, self._analyzer_source, self.worker_id)
        folder = jobs.temp_dir()
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"worker.temp_dir {folder!r} is not a writable folder", "create it, or fix the key")
        remove_stale_temp_files(self.settings.temp_dir)
        self.jobs = jobs
        analyzer = jobs.ensure_analyzer()
        # Flags only in the handler: no logging or I/O (the main thread may be in the middle of a write).
        with on_stop_signals(self.request_stop) if handle_signals else contextlib.nullcontext():
            analyzer.load()
            log_event(
                logging.INFO,
                "worker started",
                queue=self.settings.queue,
                dlq=self.dlq_url,
                max_receive_count=self.max_receive_count,
                worker=self.worker_id,
                scale_in_protection=self.protection is not None,
            )
            self._loop(jobs)
        log_event(logging.INFO, "worker stopped", reason=self.stats.stop_reason, **self._stats_fields())
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

    def _loop(self, jobs: JobRunner) -> None:
        assert self.queue is not None, "check() opens the queue"
        last_activity = time.monotonic()
        failures = 0
        while not self.stopping:
            self._touch_health()
            idle = time.monotonic() - last_activity
            reason = self.shutdown.stop_reason(self.stats.handled, idle)
            if reason is not None:
                self.request_stop(reason)
                break
            try:
                leases = self.queue.receive(self.shutdown.receive_wait(self.settings.wait_time_seconds, idle))
                failures = 0
            except QueueGone:
                raise
            except AWSError as exc:
                failures += 1
                if self.receive_backoff.gives_up(failures):
                    raise
                delay = self.receive_backoff.delay(failures)
                logger.warning("%s; retrying in %.0fs (%d/%d)", exc, delay, failures, MAX_RECEIVE_FAILURES)
                self.stop.pause(delay)
                continue
            self.stats.received += len(leases)
            if self.metrics is not None and leases:
                self.metrics.received([lease.message for lease in leases])
            for lease in leases:
                if self.stopping:
                    lease.release()
                    self.stats.released += 1
                    continue
                self._handle(lease, jobs)
                if self.fault is not None:
                    self.request_stop(f"worker fault: {self.fault.message}", immediate=True)
            if leases:
                last_activity = time.monotonic()

    # -- one message ---------------------------------------------------------------------------------
    def _handle(self, lease: Lease, jobs: JobRunner) -> None:
        """Run the message's jobs under a heartbeat, then carry out :func:`decide`'s decision."""
        ctx = JobContext(lease.attempt, lease.message_id)
        with contextlib.suppress(OSError):  # a worker killed beside this one may have left a video behind
            remove_stale_temp_files(self.settings.temp_dir)
        with self.stop.lock:
            self._current = ctx
            self.stop.job_started()  # a stop that arrived between the receive and now gives the full grace
        heartbeat = Heartbeat(
            self.settings.heartbeat_seconds, lambda: self._beat(lease, ctx, jobs), lambda: self._tick(ctx)
        )
        heartbeat.start()
        before = self.stats.to_dict()
        if self.metrics is not None:
            self.metrics.busy.set(1)
        if self.protection is not None:
            self.protection.enable()
        try:
            outcomes = self._run_jobs(lease, ctx, jobs)
            heartbeat.stop()  # before the message is deleted, released or dead-lettered
            self._settle(lease, outcomes)
        finally:
            if self.metrics is not None:
                self.metrics.busy.set(0)
                self.metrics.handled(before, self.stats.to_dict(), time.monotonic() - ctx.started)
            with self.stop.lock:
                self._current = None
                self.stop.job_ended()
            heartbeat.stop()  # before the protection goes: the heartbeat renews it
            if self.protection is not None:
                self.protection.disable()

    def _tick(self, ctx: JobContext) -> None:
        """Between beats: log a stop, cancel the job when the grace period is over or it runs too long."""
        deadline = self.stop.deadline
        if deadline is not None and not self._stop_logged:
            self._stop_logged = True
            log_event(
                logging.WARNING,
                "stop requested",
                ctx=ctx,
                reason=self.stats.stop_reason,
                grace_s=round(max(0.0, deadline - time.monotonic()), 1),
            )
        if self.stop.grace_over() and not ctx.cancel.is_set() and self._current is ctx:
            logger.warning(
                "grace period over: cancelling the job in progress",
                extra={"event": "cancel", "message_id": ctx.message_id},
            )
            ctx.cancel.set()
        ctx.time_out(self.settings.max_job_seconds)

    def _beat(self, lease: Lease, ctx: JobContext, jobs: JobRunner) -> None:
        """Every ``heartbeat_seconds``: the health file, the message's visibility, the job's DynamoDB lease, the
        task's scale-in protection."""
        self._touch_health()
        lost = lease.extend()
        if lost is not None:
            ctx.lose_lease(lost)
        jobs.renew(ctx)
        if self.protection is not None and self.protection.renew_due():
            self.protection.enable()

    def _run_jobs(self, lease: Lease, ctx: JobContext, jobs: JobRunner) -> list[Outcome]:
        """What became of each of the message's jobs (never raises for the message's or a job's fault)."""
        s = self.settings
        try:
            parsed = parse_message(lease.body, s.input_prefix, s.result_prefix, s.step)
        except MessageError as exc:
            return [self._malformed(ctx, exc)]
        except Exception as exc:  # a bug in parsing must not kill the worker (and the next one) on this body
            logger.exception("unexpected failure parsing message %s", ctx.message_id)
            return [self._malformed(ctx, MessageError(f"message body cannot be parsed ({type(exc).__name__})"))]
        if parsed.stop:
            return [Outcome(Kind.STOP)]
        if parsed.ignored:
            return [Outcome(Kind.IGNORED, parsed.ignored)]
        outcomes: list[Outcome] = []
        for job in parsed.jobs:
            try:
                outcome = jobs.run(job, ctx)
            except Exception as exc:  # a bug in the runner: retry the message, never die on it
                logger.exception("unexpected failure on VideoId %s", job.video_id)
                outcome = Outcome(Kind.TRANSIENT, f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            if isinstance(outcome.fault, WorkerFault):
                self.fault = outcome.fault
            if outcome.stops_message:
                break
        return outcomes

    def _malformed(self, ctx: JobContext, exc: MessageError) -> Outcome:
        self.stats.malformed += 1
        video_id = getattr(exc, "video_id", None)
        log_event(logging.ERROR, "malformed message", ctx=ctx, video_id=video_id, reason=exc.message)
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
        return Outcome(Kind.MALFORMED, f"malformed message: {exc.message}")

    def _settle(self, lease: Lease, outcomes: list[Outcome]) -> None:
        """Carry out the decision on the message (:func:`decide`) and count it."""
        outcome = combine(outcomes)
        decision = decide(outcome, lease.attempt, self.retry_policy)
        kind = outcome.kind
        if decision.action is Action.ACK:
            lease.delete()
            if kind is Kind.STOP:
                log_event(logging.INFO, "stop command received", ctx=lease)
                self.request_stop("stop command")
            elif kind is Kind.IGNORED:
                log_event(logging.INFO, "message ignored", ctx=lease, reason=outcome.reason)
            else:
                self.stats.done += sum(1 for o in outcomes if o.kind is Kind.DONE)
                self.stats.skipped += sum(1 for o in outcomes if o.kind is Kind.SKIPPED)
        elif decision.action is Action.DEAD_LETTER:
            lease.dead_letter(decision.reason, self.worker_id)
            if kind is Kind.PERMANENT:
                self.stats.failed += 1
        elif decision.action is Action.RETRY:
            lease.retry(decision.delay_s)
            if kind is Kind.BUSY:  # another message's live run: back when its lease ends (then done, or stale)
                self.stats.deferred += 1
                log_event(
                    logging.WARNING, "message deferred", ctx=lease, retry_in_s=decision.delay_s, reason=decision.reason
                )
            else:
                self.stats.failed += 1
                final = self.max_receive_count is not None and lease.attempt >= self.max_receive_count
                log_event(
                    logging.WARNING,
                    "message left for retry",
                    ctx=lease,
                    retry_in_s=decision.delay_s,
                    next="dead-letter queue" if final else "retry",
                )
        elif decision.action is Action.RELEASE:
            lease.release()
            self.stats.released += 1
            log_event(logging.WARNING, "message released", ctx=lease, reason="worker stopping")
        else:  # LEAVE: another worker took the job over
            self.stats.superseded += 1
            log_event(logging.WARNING, "message left to the worker that took it over", ctx=lease)
