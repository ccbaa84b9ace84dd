"""The worker against moto's in-process AWS, with a fake detector: every path a message can take."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

import crowdcount
from crowdcount.analyzer import VideoAnalyzer
from crowdcount.aws.jobs import submit_video
from crowdcount.aws.messages import STOP_BODY, job_body
from crowdcount.aws.session import make_context
from crowdcount.aws.settings import analysis_fingerprint
from crowdcount.aws.status import StatusStore
from crowdcount.aws.storage import TEMP_PREFIX
from crowdcount.aws.worker import Worker, WorkerClients, WorkerSettings, WorkerStats
from crowdcount.config import load_config
from crowdcount.errors import AWSError, ConfigError

from .support import REGION, FakeDetector, MockAws, make_config


@contextmanager
def watchdog(worker: Worker, seconds: float = 60) -> Iterator[None]:
    """Stop a worker that runs far longer than a test expects (a failing test must not hang)."""
    timer = threading.Timer(seconds, worker.request_stop, kwargs={"reason": "watchdog", "immediate": True})
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def run(worker: Worker, seconds: float = 60, **kwargs: Any) -> WorkerStats:
    with watchdog(worker, seconds):
        stats = worker.run(**kwargs)
    assert stats.stop_reason != "watchdog"
    return stats


def step(aws: MockAws, video_id: int) -> dict[str, Any]:
    entry = StatusStore(aws.dynamodb, aws.resources.table).get_step(video_id)
    assert entry is not None, f"no human_detector step for VideoId {video_id}"
    return entry


def result_document(aws: MockAws, entry: dict[str, Any]) -> dict[str, Any]:
    rf = entry["result_file"]
    return json.loads(aws.s3.get_object(Bucket=rf["bucket"], Key=rf["key"])["Body"].read())


def no_temp_files(aws: MockAws) -> bool:
    return not list(aws.tmp_path.glob(f"{TEMP_PREFIX}*"))


def test_job_is_done_result_uploaded_and_message_deleted(aws: MockAws, tiny_video: Path) -> None:
    submitted = submit_video(aws.ctx, aws.config, tiny_video, 1)
    assert submitted.key == "videos/1/video/tiny.mp4"
    detector = FakeDetector()
    stats = run(aws.worker(detector, max_jobs=1))
    assert (stats.done, stats.failed, stats.stop_reason) == (1, 0, "max-jobs")
    entry = step(aws, 1)
    assert entry["state"] == "done" and entry["attempt"] == 1 and entry["worker"] == "test-worker"
    assert entry["result_file"] == {"bucket": aws.bucket, "key": "results/1/human_detector/tiny.json"}
    assert entry["input"]["key"] == submitted.key and entry["input"]["etag"]
    assert entry["summary"]["Human"]["max_count"] == 1
    assert set(entry["timings"]) == {"download_s", "analyze_s", "upload_s"}
    document = result_document(aws, entry)
    assert document["video"]["path"] == f"s3://{aws.bucket}/{submitted.key}"
    assert document["video"]["name"] == "tiny.mp4" and document["video"]["frames_decoded"] == 12
    assert len(document["frames"]) == 6 and document["frames"][0]["Human"]["scores"] == [pytest.approx(0.9)]
    assert aws.queue_counts() == (0, 0) and aws.queue_counts(aws.dlq_url) == (0, 0)
    assert no_temp_files(aws)


def test_redelivered_message_of_a_done_video_is_acknowledged_without_recomputing(
    aws: MockAws, tiny_video: Path, long_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = aws.put_video(tiny_video, 2)
    body = job_body(2, aws.bucket, key)
    detector = FakeDetector()
    aws.send(body)
    run(aws.worker(detector, max_jobs=1))
    calls = detector.calls
    run_id = step(aws, 2)["run_id"]
    aws.send(body)  # the same message again (SQS delivers at least once)
    stats = run(aws.worker(detector, max_jobs=1))
    assert (stats.done, stats.skipped) == (0, 1) and detector.calls == calls
    assert step(aws, 2)["run_id"] == run_id and aws.queue_counts() == (0, 0)

    aws.send(job_body(2, aws.bucket, key, force=True))  # forced: recomputed
    assert run(aws.worker(detector, max_jobs=1)).done == 1 and detector.calls > calls

    aws.s3.upload_file(str(long_video), aws.bucket, key)  # new content under the same key: recomputed
    calls = detector.calls
    aws.send(body)
    assert run(aws.worker(detector, max_jobs=1)).done == 1 and detector.calls > calls
    assert step(aws, 2)["input"]["size"] == long_video.stat().st_size

    # another crowdcount (its defaults and models fill in what the configuration leaves out): recomputed
    monkeypatch.setattr(crowdcount, "__version__", "999.0")
    calls = detector.calls
    aws.send(body)
    assert run(aws.worker(detector, max_jobs=1)).done == 1 and detector.calls > calls


def test_the_analysis_fingerprint_follows_what_decides_the_result() -> None:
    def fingerprint(**overrides: Any) -> str:
        return analysis_fingerprint(load_config(None, environ={}, overrides=overrides))

    base = fingerprint()
    assert fingerprint(worker={"heartbeat_seconds": 7}) == base  # how the worker runs, not what it computes
    changed = [
        fingerprint(tracking={"lost_track_s": 3.0}),
        fingerprint(human_detection={"sample_fps": 4.0}),
        fingerprint(human_detection={"detectors": [["HumanDetector", {"min_detection_score": 0.5}]]}),
    ]
    assert len({base, *changed}) == 4


def test_corrupt_video_is_an_error_in_the_dlq_and_the_worker_serves_the_next_job(
    aws: MockAws, tiny_video: Path, corrupt_video: Path
) -> None:
    aws.send(job_body(3, aws.bucket, aws.put_video(corrupt_video, 3)))
    aws.send(job_body(4, aws.bucket, aws.put_video(tiny_video, 4)))
    stats = run(aws.worker(max_jobs=2))
    assert (stats.done, stats.failed) == (1, 1)
    bad = step(aws, 3)
    assert bad["state"] == "error" and bad["retryable"] is False and bad["error_type"] == "VideoError"
    assert "cannot be opened" in bad["reason"] or "no decodable frames" in bad["reason"]
    assert f"s3://{aws.bucket}/videos/3/video/corrupt.mp4" in bad["reason"] and TEMP_PREFIX not in bad["reason"]
    assert step(aws, 4)["state"] == "done"
    dead = aws.drain(aws.dlq_url)
    assert len(dead) == 1 and json.loads(dead[0]["Body"])["VideoId"] == 3
    assert "VideoError" not in dead[0]["MessageAttributes"]["crowdcount-error"]["StringValue"]
    assert aws.queue_counts() == (0, 0) and no_temp_files(aws)


def test_missing_s3_object_is_an_error_in_the_dlq(aws: MockAws) -> None:
    aws.send(job_body(5, aws.bucket, "videos/5/video/gone.mp4"))
    stats = run(aws.worker(max_jobs=1))
    assert stats.failed == 1
    entry = step(aws, 5)
    assert entry["state"] == "error" and "does not exist" in entry["reason"] and entry["retryable"] is False
    assert len(aws.drain(aws.dlq_url)) == 1 and aws.queue_counts() == (0, 0)


def test_video_over_the_size_limit_is_refused(aws: MockAws, tiny_video: Path) -> None:
    aws.send(job_body(6, aws.bucket, aws.put_video(tiny_video, 6)))
    stats = run(aws.worker(max_jobs=1, max_video_bytes=100))
    assert stats.failed == 1 and "over the limit" in step(aws, 6)["reason"]
    assert len(aws.drain(aws.dlq_url)) == 1 and no_temp_files(aws)


def test_malformed_messages_are_recorded_and_dead_lettered(aws: MockAws, tiny_video: Path) -> None:
    bodies = ["not json", '{"VideoId": 9, "s3": {"bucket": 1, "key": "k"}}', '{"foo": "bar"}', '{"command": "nuke"}']
    for body in bodies:
        aws.send(body)
    aws.send(job_body(10, aws.bucket, aws.put_video(tiny_video, 10)))
    stats = run(aws.worker(max_jobs=5))
    assert (stats.malformed, stats.done) == (4, 1)
    dead = aws.drain(aws.dlq_url)
    assert sorted(m["Body"] for m in dead) == sorted(bodies)
    assert all(m["MessageAttributes"]["crowdcount-error"]["StringValue"].startswith("malformed") for m in dead)
    entry = step(aws, 9)
    assert entry["state"] == "error" and entry["error_type"] == "MessageError" and "s3.bucket" in entry["reason"]
    assert aws.queue_counts() == (0, 0)


def test_s3_event_notification_is_a_job(aws: MockAws, tiny_video: Path) -> None:
    key = aws.put_video(tiny_video, 12, name="clip 1.mp4")
    s3 = {"bucket": {"name": aws.bucket}, "object": {"key": "videos/12/video/clip+1.mp4"}}
    record = {"eventName": "ObjectCreated:Put", "s3": s3}
    aws.send(json.dumps({"Records": [record]}))
    assert run(aws.worker(max_jobs=1)).done == 1
    entry = step(aws, 12)
    assert entry["input"]["key"] == key and entry["result_file"]["key"] == "results/12/human_detector/clip 1.json"


def test_stop_command_stops_the_worker_and_leaves_other_jobs(aws: MockAws, tiny_video: Path) -> None:
    aws.send(STOP_BODY)
    time.sleep(0.01)
    aws.send(job_body(13, aws.bucket, aws.put_video(tiny_video, 13)))
    stats = run(aws.worker())
    assert stats.stop_reason == "stop command" and stats.done == 0
    assert aws.queue_counts()[0] + aws.queue_counts()[1] == 1  # the job is still queued


def test_idle_timeout(aws: MockAws) -> None:
    started = time.monotonic()
    stats = run(aws.worker(idle_timeout_seconds=1.5))
    assert stats.stop_reason == "idle-timeout" and 1.4 < time.monotonic() - started < 6


def test_transient_failures_are_retried_then_dead_lettered(aws: MockAws, tiny_video: Path) -> None:
    aws.send(job_body(14, aws.bucket, aws.put_video(tiny_video, 14)))
    detector = FakeDetector(fail=RuntimeError("GPU fell off the bus"))
    stats = run(aws.worker(detector, idle_timeout_seconds=2))
    assert aws.resources.max_receive_count == 3
    assert stats.failed == 3 and detector.calls == 3  # one try per receive
    entry = step(aws, 14)
    assert entry["state"] == "error" and entry["retryable"] is True and entry["attempt"] == 3
    assert "GPU fell off the bus" in entry["reason"]
    assert aws.queue_counts() == (0, 0) and len(aws.drain(aws.dlq_url)) == 1
    assert no_temp_files(aws)


def test_heartbeat_keeps_a_long_job_invisible_to_other_workers(aws: MockAws, long_video: Path) -> None:
    aws.send(job_body(15, aws.bucket, aws.put_video(long_video, 15)))
    stolen: list[dict[str, Any]] = []
    stop = threading.Event()
    working = threading.Event()
    other = aws.ctx.client("sqs")

    class Slow(FakeDetector):
        def _detect(self, frames: Any) -> Any:
            working.set()  # the worker holds the message now
            return super()._detect(frames)

    def rival() -> None:
        working.wait(30)
        while not stop.is_set():
            stolen.extend(other.receive_message(QueueUrl=aws.queue_url, WaitTimeSeconds=0).get("Messages", []))
            stop.wait(0.2)

    thread = threading.Thread(target=rival)
    worker = aws.worker(Slow(delay_s=0.7), max_jobs=1, visibility_timeout=2, heartbeat_seconds=1)
    thread.start()
    try:
        started = time.monotonic()
        stats = run(worker)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    assert elapsed > 4, "the job must outlast the visibility timeout twice for this test to mean anything"
    assert stats.done == 1 and stolen == [] and step(aws, 15)["attempt"] == 1
    assert aws.queue_counts() == (0, 0)


def test_sigterm_mid_job_within_the_grace_period_finishes_the_job(aws: MockAws, long_video: Path) -> None:
    aws.send(job_body(16, aws.bucket, aws.put_video(long_video, 16)))
    aws.send(job_body(17, aws.bucket, aws.put_video(long_video, 17)))
    worker = aws.worker(FakeDetector(delay_s=0.3), grace_period_seconds=30)
    timer = threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGTERM))
    previous = signal.getsignal(signal.SIGTERM)
    timer.start()
    stats = run(worker, handle_signals=True)
    timer.join()
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert stats.stop_reason == "SIGTERM" and stats.done == 1
    assert step(aws, 16)["state"] == "done"
    assert aws.queue_counts() == (1, 0)  # the second job was never received


def test_stop_mid_job_after_the_grace_period_releases_the_message(aws: MockAws, long_video: Path) -> None:
    aws.send(job_body(18, aws.bucket, aws.put_video(long_video, 18)))
    stopped: list[float] = []

    class StopMidJob(FakeDetector):  # the stop comes mid-job, however long the worker took to start
        def _detect(self, frames: Any) -> Any:
            if not self.calls:
                stopped.append(time.monotonic())
                worker.request_stop("SIGTERM")
            return super()._detect(frames)

    worker = aws.worker(StopMidJob(delay_s=0.5), grace_period_seconds=1)
    stats = run(worker)
    assert time.monotonic() - stopped[0] < 5  # the 1 s grace period, then the next batch notices
    assert (stats.stop_reason, stats.done, stats.released) == ("SIGTERM", 0, 1)
    entry = step(aws, 18)
    assert entry["state"] == "error" and entry["retryable"] is True and "interrupted" in entry["reason"]
    again = aws.sqs.receive_message(
        QueueUrl=aws.queue_url, WaitTimeSeconds=0, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert len(again) == 1 and again[0]["Attributes"]["ApproximateReceiveCount"] == "2"  # released at once
    assert no_temp_files(aws)


def test_a_worker_whose_job_was_taken_over_leaves_the_message_alone(aws: MockAws, tiny_video: Path) -> None:
    """The message was redelivered to another worker mid-job (lost lease): this one must not record its end."""
    aws.send(job_body(19, aws.bucket, aws.put_video(tiny_video, 19)))
    store = StatusStore(aws.dynamodb, aws.resources.table)

    class TakenOver(FakeDetector):
        def _detect(self, frames: Any) -> Any:
            if self.calls == 0:  # this run's lease expires (a long pause), then another worker takes over
                store.renew(19, store.get_step(19)["run_id"], -1)  # type: ignore[index]
                store.start(19, {"run_id": "other-worker-run", "attempt": 2})
            return super()._detect(frames)

    stats = run(aws.worker(TakenOver(), max_jobs=1))
    assert stats.superseded == 1 and stats.done == 0
    entry = step(aws, 19)
    assert entry["state"] == "running" and entry["run_id"] == "other-worker-run"
    assert aws.queue_counts() == (0, 1)  # still leased; it comes back after the visibility timeout


def test_settings_are_validated(aws: MockAws) -> None:
    with pytest.raises(ConfigError, match="heartbeat_seconds"):
        WorkerSettings.from_config(make_config(aws.tmp_path, heartbeat_seconds=10, visibility_timeout=10))
    with pytest.raises(ConfigError, match="wait_time_seconds"):
        WorkerSettings.from_config(make_config(aws.tmp_path, wait_time_seconds=21))


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"aws_queues": {"human_detection": "nope"}}, "queue 'nope' does not exist"),
        ({"video_split": {"output_bucket": "nope-bucket"}}, "bucket 'nope-bucket' does not exist"),
        ({"dynamodb": {"table_id": "nope"}}, "table 'nope' does not exist"),
    ],
)
def test_missing_queue_bucket_or_table_fails_at_start(aws: MockAws, override: dict[str, Any], needle: str) -> None:
    config = aws.config.with_overrides(override)
    worker = aws.worker(config=config)
    with pytest.raises(AWSError, match=needle) as info:
        worker.run()
    assert info.value.exit_code == 3


def test_unreachable_endpoint_fails_at_start(aws_env: None, tmp_path: Path) -> None:
    config = make_config(tmp_path)
    ctx = make_context(REGION, "http://127.0.0.1:9", session=boto3.Session(region_name=REGION))
    clients = WorkerClients.from_context(ctx, config)
    worker = Worker(clients, WorkerSettings.from_config(config), lambda: pytest.fail("models must not load"))
    started = time.monotonic()
    with pytest.raises(AWSError, match=r"cannot reach http://127\.0\.0\.1:9") as info:
        worker.run()
    assert info.value.exit_code == 3 and time.monotonic() - started < 30


class Denying:
    """A boto3 client whose listed operations fail with AccessDenied (a least-privilege IAM role)."""

    def __init__(self, client: Any, denied: set[str], when: Any = None) -> None:
        self._client = client
        self._denied = denied
        self._when = when or (lambda name, kwargs: True)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self._denied:
            return attr

        def deny(**kwargs: Any) -> Any:
            if not self._when(name, kwargs):
                return attr(**kwargs)
            error = {"Error": {"Code": "AccessDenied", "Message": f"not allowed: {name}"}}
            raise ClientError(error, name)

        return deny


def test_least_privilege_role_bad_messages_reach_the_dlq_through_the_redrive_policy(
    aws: MockAws, tiny_video: Path, corrupt_video: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The deploy task role grants no GetQueueAttributes, no DLQ access, no HeadBucket, no DescribeTable."""
    aws.send(job_body(20, aws.bucket, aws.put_video(corrupt_video, 20)))
    aws.send("not json at all")
    aws.send(job_body(21, aws.bucket, aws.put_video(tiny_video, 21)))
    dlq_name = aws.resources.dlq
    sqs = Denying(
        aws.sqs,
        {"get_queue_attributes", "send_message", "get_queue_url"},
        when=lambda name, kwargs: name != "get_queue_url" or kwargs.get("QueueName") == dlq_name,
    )
    clients = WorkerClients(sqs, Denying(aws.s3, {"head_bucket"}), Denying(aws.dynamodb, {"describe_table"}))
    settings = WorkerSettings.from_config(aws.config)
    analyzer = VideoAnalyzer([FakeDetector()], frame_ratio=0.5)
    worker = Worker(clients, WorkerSettings(**{**settings.__dict__, "idle_timeout_seconds": 2}), analyzer)
    with caplog.at_level(logging.INFO, logger="crowdcount.aws.worker"):
        stats = run(worker)
    assert worker.dlq_url is None and worker.has_redrive is None
    assert stats.done == 1 and step(aws, 21)["state"] == "done"
    entry = step(aws, 20)
    assert entry["state"] == "error" and entry["retryable"] is False and entry["attempt"] == 1
    events = [getattr(r, "event", "") for r in caplog.records]
    assert events.count("job already failed") == 2  # attempts 2 and 3: released again, not recomputed
    assert events.count("message left to the redrive policy") == 6  # 2 messages x 3 receives
    dead = aws.drain(aws.dlq_url)  # moved there by SQS after maxReceiveCount (3) receives
    expected = [job_body(20, aws.bucket, "videos/20/video/corrupt.mp4"), "not json at all"]
    assert sorted(m["Body"] for m in dead) == sorted(expected)
    assert aws.queue_counts() == (0, 0)


def test_a_table_with_another_key_is_refused_at_start(aws: MockAws) -> None:
    aws.dynamodb.create_table(
        TableName="other-key",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    worker = aws.worker(config=aws.config.with_overrides({"dynamodb": {"table_id": "other-key"}}))
    with pytest.raises(AWSError, match="key must be VideoId, a number"):
        worker.check()
