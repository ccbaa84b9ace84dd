"""One job: the video in S3 -> the pipeline -> the result file in S3, and the step's status in DynamoDB.

:class:`JobRunner` knows no queue: it is given a :class:`~crowdcount.aws.messages.Job` and a :class:`JobContext`
(the attempt, a cancel flag, the lease state) and returns an :class:`~crowdcount.aws.decide.Outcome`; what
becomes of the message is the worker's decision (:func:`crowdcount.aws.decide.decide`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crowdcount.analyzer import VideoAnalyzer, to_document
from crowdcount.analyzer.result import dumps
from crowdcount.analyzer.video import probe_video
from crowdcount.aws.checkpoint import Checkpointer, checkpoint_key
from crowdcount.aws.decide import Kind, Outcome
from crowdcount.aws.joblog import JOB_LOG as logger
from crowdcount.aws.joblog import log_event
from crowdcount.aws.messages import Job
from crowdcount.aws.settings import WorkerSettings, over_limits
from crowdcount.aws.status import StatusStore, StepSuperseded, lease_left
from crowdcount.aws.storage import (
    Cancelled,
    S3Object,
    downloaded,
    head_video,
    object_exists,
    result_key,
    upload_result,
)
from crowdcount.errors import AWSError, CrowdcountError, MessageError, VideoError


class WorkerFault(CrowdcountError):
    """This worker cannot run jobs (its disk is full, its ``temp_dir`` unusable): not the job's fault. The
    message is handed back for a healthy worker and this one stops with this error (exit code 1)."""


@dataclass
class JobContext:
    """The job (or jobs) of one received message while they run: shared by the runner and the heartbeat."""

    attempt: int
    message_id: str = ""
    #: Set when the job must stop (shutdown grace period over, lease lost, too long).
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    #: The job being run: (VideoId, run_id), for the lease renewals.
    job: tuple[int, str] | None = None
    #: Why the job lost its lease (message or DynamoDB), when it did: it stops and leaves the video alone.
    lease_lost: str | None = None
    #: Set when the job ran past ``max_job_seconds``.
    timed_out: bool = False
    #: Held while the lease is renewed and while the run's end is recorded: a renewal that read ``running``
    #: must not write it back over the ``done`` (or ``error``) recorded meanwhile.
    status_lock: threading.Lock = field(default_factory=threading.Lock)

    def lose_lease(self, reason: str) -> None:
        """The job no longer holds its message or its video: stop it (another worker may run it now)."""
        if self.lease_lost is None:
            self.lease_lost = reason
            logger.warning(
                "lease lost on message %s (%s): stopping the job",
                self.message_id,
                reason,
                extra={"event": "lease lost", "message_id": self.message_id},
            )
        self.cancel.set()

    def time_out(self, max_job_seconds: float, now: float | None = None) -> bool:
        """Cancel a job running longer than ``max_job_seconds``; ``True`` when it did now."""
        now = time.monotonic() if now is None else now
        if self.job is not None and now - self.started > max_job_seconds and not self.cancel.is_set():
            self.timed_out = True
            self.cancel.set()
            return True
        return False


class JobRunner:
    """Runs jobs: S3 in, the analyzer, S3 out, status in DynamoDB.

    Args:
        s3: a boto3 S3 client.
        status: the status table's step of this worker.
        settings: limits and names (``temp_dir``, ``max_video_bytes``, ``result_prefix``...).
        analyzer: the :class:`VideoAnalyzer`, or a function building it (called once, on first use).
        worker_id: recorded in the status document.
    """

    def __init__(
        self,
        s3: Any,
        status: StatusStore,
        settings: WorkerSettings,
        analyzer: VideoAnalyzer | Callable[[], VideoAnalyzer],
        worker_id: str,
    ) -> None:
        self.s3 = s3
        self.status = status
        self.settings = settings
        self.worker_id = worker_id
        self._analyzer_source = analyzer
        self.analyzer: VideoAnalyzer | None = analyzer if isinstance(analyzer, VideoAnalyzer) else None

    def ensure_analyzer(self) -> VideoAnalyzer:
        """The analyzer, built on first use."""
        if self.analyzer is None:
            source = self._analyzer_source
            self.analyzer = source if isinstance(source, VideoAnalyzer) else source()
        return self.analyzer

    def renew(self, ctx: JobContext) -> None:
        """Renew the running job's DynamoDB lease (from the heartbeat); a superseded run loses its lease."""
        with ctx.status_lock:
            if ctx.job is None or ctx.lease_lost:
                return
            video_id, run_id = ctx.job
            try:
                self.status.renew(video_id, run_id, self.settings.visibility_timeout)
            except StepSuperseded as exc:
                ctx.lose_lease(str(exc))
            except Exception as exc:  # DynamoDB unreachable: the next beat tries again; the end write decides
                logger.warning("could not renew the lease of VideoId %s: %s", video_id, exc)

    def _finish(self, ctx: JobContext, video_id: int, run_id: str, state: str, fields: dict[str, Any]) -> None:
        """Record the run's end; the heartbeat renews its lease no more (see :attr:`JobContext.status_lock`)."""
        with ctx.status_lock:
            ctx.job = None
            self.status.finish(video_id, run_id, state, fields)

    def temp_dir(self) -> str:
        return self.settings.temp_dir or tempfile.gettempdir()

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
                return object_exists(self.s3, result["bucket"], result["key"])
            except AWSError as exc:  # e.g. a role that may write results but not read them: trust the document
                logger.debug("cannot check the result file of VideoId %s: %s", job.video_id, exc)
                return True

        return check

    @staticmethod
    def _failed_redelivery(obj: S3Object | None, ctx: JobContext) -> Callable[[dict[str, Any]], bool]:
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

    def run(self, job: Job, ctx: JobContext) -> Outcome:
        """Run one job; returns what happened. Never raises for a job's own failure (nor for a fault of this
        worker: that is the outcome's ``fault``)."""
        s = self.settings
        log_event(logging.INFO, "job received", job, ctx)
        run_id = uuid.uuid4().hex
        started = time.monotonic()
        missing: VideoError | None = None
        obj: S3Object | None = None
        try:
            try:
                obj = head_video(self.s3, job.bucket, job.key)
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
            log_event(logging.WARNING, "job failed", job, ctx, state="error", reason=reason, retryable=True)
            return Outcome(Kind.TRANSIENT, reason)
        if start.busy:
            left = lease_left(start.entry)
            log_event(
                logging.WARNING,
                "job running elsewhere",
                job,
                ctx,
                state="running",
                owner=start.entry.get("worker"),
                lease_left_s=round(left, 1),
            )
            return Outcome(Kind.BUSY, lease_left_s=left)
        if start.already_failed:
            reason = str(start.entry.get("reason") or "failed")
            log_event(logging.WARNING, "job already failed", job, ctx, state="error", reason=reason)
            return Outcome(Kind.PERMANENT, reason)
        if start.already_done:
            log_event(
                logging.INFO,
                "job already done",
                job,
                ctx,
                state="done",
                result_key=(start.entry.get("result_file") or {}).get("key"),
            )
            return Outcome(Kind.SKIPPED)
        log_event(logging.INFO, "job running", job, ctx, state="running", run_id=run_id)
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
            with downloaded(self.s3, obj, s.max_video_bytes, s.temp_dir, ctx.cancel) as path:
                local_path = str(path)
                timings["download_s"] = round(time.monotonic() - t, 3)
                self._check_cancel(ctx)
                self._check_limits(path)
                t = time.monotonic()
                analyzer = self.ensure_analyzer()
                checkpointer = self._checkpointer(job, obj, analyzer)
                saved = checkpointer.load()
                resumed_from = saved.frames if saved is not None else 0
                if resumed_from:
                    log_event(logging.INFO, "job resumed", job, ctx, frames=resumed_from, checkpoint=checkpointer.uri)

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
            upload_result(self.s3, job.bucket, key, dumps(document))
            timings["upload_s"] = round(time.monotonic() - t, 3)
            elapsed = round(time.monotonic() - started, 3)
            summary = {
                category: {k: v[k] for k in ("frames_analyzed", "max_count", "mean_count")}
                for category, v in document["summary"].items()
            }
            self._finish(
                ctx,
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
            log_event(
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
            return Outcome(Kind.DONE)
        except StepSuperseded as exc:
            log_event(logging.WARNING, "job superseded", job, ctx, reason=str(exc))
            return Outcome(Kind.SUPERSEDED, str(exc))
        except Cancelled:
            if checkpointer is not None and not ctx.lease_lost:  # the next worker resumes from here
                checkpointer.save()
            if ctx.lease_lost:  # another worker may own the video now: write nothing, leave the message
                log_event(logging.WARNING, "job superseded", job, ctx, reason=f"lease lost: {ctx.lease_lost}")
                return Outcome(Kind.SUPERSEDED, f"lease lost: {ctx.lease_lost}")
            if ctx.timed_out:
                reason = (
                    f"the job ran longer than worker.max_job_seconds ({s.max_job_seconds} s); raise it, or split "
                    "the video"
                )
                self._finish_error(job, ctx, run_id, reason, "JobTimeout", False, started)
                return Outcome(Kind.PERMANENT, reason)
            reason = "interrupted: the worker was stopped before the job finished; released for retry"
            self._finish_error(job, ctx, run_id, reason, "Cancelled", True, started)
            return Outcome(Kind.CANCELLED, reason)
        except WorkerFault as exc:  # this worker's disk, not the job: hand the message back, stop the worker
            self._finish_error(job, ctx, run_id, str(exc), "WorkerFault", True, started)
            return Outcome(Kind.CANCELLED, str(exc), fault=exc)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                return self._retryable(job, ctx, run_id, exc, started)
            fault = WorkerFault(f"the worker cannot write its temporary files in {self.temp_dir()}: {exc}")
            self._finish_error(job, ctx, run_id, str(fault), "WorkerFault", True, started)
            return Outcome(Kind.CANCELLED, str(fault), fault=fault)
        except (VideoError, MessageError) as exc:
            reason = str(exc).replace(local_path, job.s3_uri) if local_path else str(exc)  # name S3, not /tmp
            self._finish_error(job, ctx, run_id, reason, type(exc).__name__, False, started)
            return Outcome(Kind.PERMANENT, reason)
        except Exception as exc:  # AWS, the model, a bug: retry, then the DLQ via the redrive policy
            return self._retryable(job, ctx, run_id, exc, started)

    def _retryable(self, job: Job, ctx: JobContext, run_id: str, exc: Exception, started: float) -> Outcome:
        if not isinstance(exc, AWSError):
            logger.exception("unexpected failure on VideoId %s", job.video_id, exc_info=exc)
        reason = str(exc) if isinstance(exc, AWSError) else f"{type(exc).__name__}: {exc}"
        self._finish_error(job, ctx, run_id, reason, type(exc).__name__, True, started)
        return Outcome(Kind.TRANSIENT, reason)

    def _finish_error(
        self, job: Job, ctx: JobContext, run_id: str, reason: str, error_type: str, retryable: bool, started: float
    ) -> None:
        elapsed = round(time.monotonic() - started, 3)
        log_event(
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
            self._finish(
                ctx,
                job.video_id,
                run_id,
                "error",
                {"reason": reason[:1000], "error_type": error_type, "retryable": retryable, "elapsed_s": elapsed},
            )
        except (StepSuperseded, AWSError) as exc:
            logger.warning("could not record the error of VideoId %s: %s", job.video_id, exc)

    @staticmethod
    def _check_cancel(ctx: JobContext) -> None:
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
        return Checkpointer(self.s3, job.bucket, key, identity, s.checkpoint_seconds)

    def _check_disk(self, obj: S3Object) -> None:
        """:class:`WorkerFault` when ``temp_dir`` lacks room for the video plus ``min_free_disk_bytes``."""
        folder = self.temp_dir()
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
        info = probe_video(path)
        over = over_limits(info, self.settings.max_pixels, self.settings.max_duration_seconds)
        if over is not None:
            setting, why = over
            hint = {
                "max_pixels": "downscale it, or raise worker.max_pixels on workers with more memory",
                "max_duration_seconds": "split it, or raise worker.max_duration_seconds",
            }[setting]
            raise VideoError(f"video {info.path} {why}", hint)


def _describe_source(document: dict[str, Any], obj: S3Object, local_path: str) -> None:
    """Name the S3 object, not the temporary file, in a result document."""
    video = document["video"]
    video["path"] = obj.uri
    video["name"] = obj.key.rsplit("/", 1)[-1]
    video["s3"] = {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag}
    document["warnings"] = [w.replace(local_path, obj.uri) for w in document["warnings"]]
