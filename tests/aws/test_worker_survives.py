"""A worker never dies on a bad message and never deletes one it did not finish (issue 17)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from crowdcount.aws.job import JobRunner
from crowdcount.aws.messages import job_body
from crowdcount.aws.status import StatusStore

from .support import FakeDetector, MockAws
from .test_worker import run, step


def test_an_unexpected_os_error_in_a_job_is_retried_and_the_worker_serves_the_next(
    aws: MockAws, tiny_video: Path
) -> None:
    """Not a disk fault (no room, read-only): the job failed, not the worker. Before, such an OSError escaped the
    job's error handling and ended the worker."""
    aws.send(job_body(60, aws.bucket, aws.put_video(tiny_video, 60)))
    worker = aws.worker(FakeDetector(fail=FileNotFoundError(errno.ENOENT, "model shard vanished")), max_jobs=1)
    stats = run(worker)
    assert (stats.failed, stats.done) == (1, 0) and stats.stop_reason == "max-jobs" and worker.fault is None
    entry = step(aws, 60)
    assert entry["state"] == "error" and entry["retryable"] is True and "model shard vanished" in entry["reason"]
    assert aws.queue_counts() == (1, 0)  # made visible again (retry_delay_seconds 0): not deleted


def test_a_bug_in_the_job_runner_leaves_the_message_for_retry(aws: MockAws, tiny_video: Path, monkeypatch: Any) -> None:
    aws.send(job_body(61, aws.bucket, aws.put_video(tiny_video, 61)))

    def broken(self: JobRunner, job: Any, ctx: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(JobRunner, "run", broken)
    stats = run(aws.worker(max_jobs=1))
    assert stats.failed == 1 and stats.done == 0
    assert aws.queue_counts() == (1, 0) and StatusStore(aws.dynamodb, aws.resources.table).get_step(61) is None
