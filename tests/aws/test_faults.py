"""Faults from the reliability audit (issue 16), each through the worker against moto's in-process AWS."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from crowdcount.aws.messages import job_body
from crowdcount.aws.status import StatusStore
from crowdcount.aws.worker import WorkerClients, WorkerFault, WorkerSettings
from crowdcount.errors import ConfigError

from .support import FakeDetector, MockAws, make_config
from .test_worker import run, step


def notify_queue(aws: MockAws, prefix: str = "") -> None:
    """The documented bucket notification: object-created events (under ``prefix``) to the job queue."""
    arn = aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule: dict[str, Any] = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}
    if prefix:
        rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    aws.s3.put_bucket_notification_configuration(
        Bucket=aws.bucket, NotificationConfiguration={"QueueConfigurations": [rule]}
    )


# -- item 1: a malformed body never kills the worker -------------------------------------------------------------


def test_hostile_bodies_are_dead_lettered_and_the_worker_serves_the_next_job(aws: MockAws, tiny_video: Path) -> None:
    s3_event = {"Records": [{"s3": {"bucket": {"name": aws.bucket}, "object": {"key": "videos/%C2%B2/video/x.mp4"}}}]}
    lone = "\\udc80"  # JSON text for a lone surrogate
    bodies = [
        json.dumps({"VideoId": "²", "s3": {"bucket": aws.bucket, "key": "videos/1/video/x.mp4"}}),
        json.dumps(s3_event),
        json.dumps({"VideoId": 21, "s3": {"bucket": aws.bucket, "key": "videos/21/video/@.mp4"}}).replace("@", lone),
        "[" * 60_000 + "]" * 60_000,
    ]
    for body in bodies:
        aws.send(body)
    aws.send(job_body(22, aws.bucket, aws.put_video(tiny_video, 22)))
    stats = run(aws.worker(max_jobs=5))
    assert (stats.malformed, stats.done) == (4, 1)
    assert sorted(m["Body"] for m in aws.drain(aws.dlq_url)) == sorted(bodies)
    assert step(aws, 21)["error_type"] == "MessageError" and "UTF-8" in step(aws, 21)["reason"]


# -- item 2: the worker's own uploads are not jobs ----------------------------------------------------------------


@pytest.mark.parametrize("result_prefix", [None, "results/", "videos/results/"])
def test_s3_events_of_the_workers_own_results_are_ignored(
    aws: MockAws, tiny_video: Path, result_prefix: str | None
) -> None:
    notify_queue(aws)  # every object of the bucket: results included, whatever the layout
    aws.drain(aws.queue_url)  # the s3:TestEvent
    aws.put_video(tiny_video, 23)
    settings = {**WorkerSettings.from_config(aws.config).__dict__, "result_prefix": result_prefix}
    worker = aws.worker(**{k: v for k, v in settings.items() if k == "result_prefix"}, idle_timeout_seconds=3)
    stats = run(worker)
    entry = step(aws, 23)
    assert entry["state"] == "done" and entry["result_file"]["key"].endswith("23/human_detector/tiny.json")
    assert (stats.done, stats.failed, stats.malformed, stats.received) == (1, 0, 0, 2)  # the video, its result
    assert aws.queue_counts() == (0, 0) and aws.drain(aws.dlq_url) == []


def test_results_default_outside_the_input_prefix(tmp_path: Path) -> None:
    settings = WorkerSettings.from_config(make_config(tmp_path))
    assert settings.result_prefix == "results/"
    shipped = json.loads((Path(__file__).resolve().parents[2] / "variables.json").read_text())
    assert shipped["human_detection"]["result_prefix"] == "results/"


# -- item 4: a superseded run never uploads over the newer run's result ------------------------------------------


def test_a_superseded_run_does_not_overwrite_the_newer_result(aws: MockAws, tiny_video: Path) -> None:
    aws.send(job_body(24, aws.bucket, aws.put_video(tiny_video, 24)))
    store = StatusStore(aws.dynamodb, aws.resources.table)
    newer = b'{"written_by": "the newer run"}'
    key = "results/24/human_detector/tiny.json"

    class OvertakenBeforeUpload(FakeDetector):
        def _detect(self, frames: Any) -> Any:
            if self.calls == 0:  # this run stalls past its lease; another run takes over and finishes first
                store.renew(24, store.get_step(24)["run_id"], -1)  # type: ignore[index]
                store.start(24, {"run_id": "newer", "attempt": 2})
                aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=newer)
                store.finish(24, "newer", "done", {"result_file": {"bucket": aws.bucket, "key": key}})
            return super()._detect(frames)

    stats = run(aws.worker(OvertakenBeforeUpload(), max_jobs=1))
    assert stats.superseded == 1 and stats.done == 0
    assert aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read() == newer
    assert step(aws, 24)["run_id"] == "newer" and step(aws, 24)["state"] == "done"


# -- item 5: a lease in DynamoDB; two messages for one video run it once ------------------------------------------


def test_two_messages_for_one_running_video_run_the_analysis_once(aws: MockAws, long_video: Path) -> None:
    key = aws.put_video(long_video, 25)
    aws.send(job_body(25, aws.bucket, key))
    first = FakeDetector(delay_s=0.15)
    worker_a = aws.worker(first, max_jobs=1)
    thread = threading.Thread(target=run, args=(worker_a,))
    thread.start()
    deadline = time.monotonic() + 20
    while (StatusStore(aws.dynamodb, aws.resources.table).get_step(25) or {}).get("state") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    aws.send(job_body(25, aws.bucket, key))  # a duplicate (e.g. the S3 event and a submit)
    second = FakeDetector()
    stats_b = run(aws.worker(second, max_jobs=1))
    assert stats_b.deferred == 1 and second.calls == 0  # not run twice: deferred to the lease's end
    thread.join(60)
    assert worker_a.stats.done == 1
    stats_b = run(aws.worker(second, max_jobs=1), 60)  # the deferred message comes back: already done
    assert stats_b.skipped == 1 and second.calls == 0
    assert step(aws, 25)["state"] == "done" and aws.queue_counts() == (0, 0)


def test_redelivery_of_the_same_message_takes_over_a_dead_workers_run(aws: MockAws, tiny_video: Path) -> None:
    """SIGKILL mid-job: the entry stays running with a live-looking lease; the same message coming back (its
    visibility lapsed, so its previous receiver is gone) takes over at once rather than waiting."""
    message_id = aws.send(job_body(26, aws.bucket, aws.put_video(tiny_video, 26)))
    store = StatusStore(aws.dynamodb, aws.resources.table)
    store.start(26, {"run_id": "killed", "message_id": message_id, "attempt": 1, "lease_until": time.time() + 300})
    stats = run(aws.worker(max_jobs=1))
    assert stats.done == 1 and step(aws, 26)["state"] == "done"


def test_lease_lost_mid_job_stops_the_job_and_writes_nothing(aws: MockAws, long_video: Path) -> None:
    aws.send(job_body(27, aws.bucket, aws.put_video(long_video, 27)))
    store = StatusStore(aws.dynamodb, aws.resources.table)

    class Stolen(FakeDetector):
        def _detect(self, frames: Any) -> Any:
            if self.calls == 0:  # another run takes the video over (our lease expired during a pause)
                store.renew(27, store.get_step(27)["run_id"], -1)  # type: ignore[index]
                store.start(27, {"run_id": "thief", "attempt": 2})
            return super()._detect(frames)

    detector = Stolen(delay_s=0.2)
    stats = run(aws.worker(detector, max_jobs=1, heartbeat_seconds=1))
    assert stats.superseded == 1 and detector.frames < 30  # stopped at the next heartbeat, not run to the end
    assert step(aws, 27)["run_id"] == "thief" and step(aws, 27)["state"] == "running"
    assert not aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="results/27/").get("Contents")


def test_a_failed_visibility_extension_stops_the_job(aws: MockAws, long_video: Path) -> None:
    """The message was deleted/redelivered under the worker (an invalid receipt): the job must not go on."""
    aws.send(job_body(28, aws.bucket, aws.put_video(long_video, 28)))
    worker = aws.worker(FakeDetector(delay_s=0.2), max_jobs=1, heartbeat_seconds=1)

    class Sqs:
        def __getattr__(self, name: str) -> Any:
            return getattr(aws.sqs, name)

        def change_message_visibility(self, **kwargs: Any) -> Any:
            if kwargs["VisibilityTimeout"] > 0:
                raise ClientError({"Error": {"Code": "ReceiptHandleIsInvalid", "Message": "gone"}}, "Change")
            return aws.sqs.change_message_visibility(**kwargs)

    worker.clients = WorkerClients(Sqs(), aws.s3, aws.dynamodb)
    stats = run(worker)
    assert stats.superseded == 1 and step(aws, 28)["state"] == "running"  # left to the worker that has it now


def test_heartbeat_must_leave_time_for_a_retry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at most half of visibility_timeout"):
        WorkerSettings.from_config(make_config(tmp_path, heartbeat_seconds=299, visibility_timeout=300))


# -- item 7: limits on size, duration, job time, disk --------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "needle"),
    [({"max_pixels": 64 * 48 - 1}, "over worker.max_pixels"), ({"max_duration_seconds": 1}, "max_duration_seconds")],
)
def test_videos_over_the_limits_are_permanent_errors(
    aws: MockAws, tiny_video: Path, limit: dict[str, int], needle: str
) -> None:
    aws.send(job_body(29, aws.bucket, aws.put_video(tiny_video, 29)))
    detector = FakeDetector()
    stats = run(aws.worker(detector, max_jobs=1, **limit))
    entry = step(aws, 29)
    assert stats.failed == 1 and detector.calls == 0
    assert entry["state"] == "error" and entry["retryable"] is False and needle in entry["reason"]
    assert "s3://" in entry["reason"] and len(aws.drain(aws.dlq_url)) == 1


def test_a_job_over_max_job_seconds_is_a_permanent_error(aws: MockAws, long_video: Path) -> None:
    aws.send(job_body(30, aws.bucket, aws.put_video(long_video, 30)))
    stats = run(aws.worker(FakeDetector(delay_s=0.3), max_jobs=1, max_job_seconds=1))
    entry = step(aws, 30)
    assert stats.failed == 1 and entry["error_type"] == "JobTimeout" and entry["retryable"] is False
    assert len(aws.drain(aws.dlq_url)) == 1


def test_a_full_disk_stops_the_worker_and_hands_the_message_back(aws: MockAws, tiny_video: Path) -> None:
    aws.send(job_body(31, aws.bucket, aws.put_video(tiny_video, 31)))
    worker = aws.worker(min_free_disk_bytes=10**18)
    with pytest.raises(WorkerFault, match="bytes free"):
        run(worker)
    assert worker.stats.failed == 0 and worker.stats.released == 1
    assert step(aws, 31)["retryable"] is True and aws.queue_counts() == (1, 0)  # for a healthy worker, at once


def test_a_temp_dir_that_cannot_be_written_fails_at_start(aws: MockAws) -> None:
    with pytest.raises(ConfigError, match="worker.temp_dir '/nonexistent/x' is not a writable folder"):
        aws.worker(temp_dir="/nonexistent/x").run()


def test_zero_byte_and_truncated_videos_through_the_worker(aws: MockAws, long_video: Path) -> None:
    aws.s3.put_object(Bucket=aws.bucket, Key="videos/32/video/empty.mp4", Body=b"")
    data = long_video.read_bytes()
    aws.s3.put_object(Bucket=aws.bucket, Key="videos/33/video/cut.mp4", Body=data[: len(data) // 2])
    aws.send(job_body(32, aws.bucket, "videos/32/video/empty.mp4"))
    aws.send(job_body(33, aws.bucket, "videos/33/video/cut.mp4"))
    stats = run(aws.worker(max_jobs=2))
    assert stats.failed + stats.done == 2
    assert step(aws, 32)["state"] == "error" and "empty" in step(aws, 32)["reason"]
    assert step(aws, 32)["retryable"] is False
    cut = step(aws, 33)  # a truncated mp4 either decodes partly (done, with a warning) or not at all (error)
    assert (cut["state"] == "done" and cut["warnings"]) or (cut["state"] == "error" and cut["retryable"] is False)


def test_the_video_changing_mid_download_is_retried(aws: MockAws, tiny_video: Path, long_video: Path) -> None:
    key = aws.put_video(tiny_video, 34)
    aws.send(job_body(34, aws.bucket, key))
    worker = aws.worker(max_jobs=1)
    real_get = aws.s3.get_object

    class S3:
        def __getattr__(self, name: str) -> Any:
            return getattr(aws.s3, name)

        def get_object(self, **kwargs: Any) -> Any:  # replaced between the HEAD and the GET: S3 answers 412
            aws.s3.upload_file(str(long_video), aws.bucket, key)
            return real_get(**kwargs)

    worker.clients = WorkerClients(aws.sqs, S3(), aws.dynamodb)
    stats = run(worker)
    entry = step(aws, 34)
    assert stats.failed == 1 and entry["retryable"] is True and "changed while being downloaded" in entry["reason"]


# -- item 9: VideoId and key must agree ----------------------------------------------------------------------------


def test_a_video_id_that_does_not_match_its_key_writes_nothing_for_the_other_video(
    aws: MockAws, tiny_video: Path
) -> None:
    key = aws.put_video(tiny_video, 36)
    aws.send(job_body(35, aws.bucket, key))
    stats = run(aws.worker(max_jobs=1))
    assert stats.malformed == 1
    assert "does not match" in step(aws, 35)["reason"]
    assert StatusStore(aws.dynamodb, aws.resources.table).get_step(36) is None
    assert not aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="results/").get("Contents")


def test_the_worker_touches_its_health_file(aws: MockAws, tmp_path: Path) -> None:
    worker = aws.worker(idle_timeout_seconds=1)
    worker.health_file = str(tmp_path / "alive")
    before = time.time()
    run(worker)
    assert (tmp_path / "alive").stat().st_mtime >= before - 1


# -- the fault tests the audit asked for --------------------------------------------------------------------------


class _Flaky:
    """A client that fails ``operation`` ``times`` times with an AWS error, then passes through."""

    def __init__(self, client: Any, operation: str, times: int = 1, when: Any = None) -> None:
        self.client, self.operation, self.left, self.when = client, operation, times, when

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != self.operation:
            return real

        def call(**kwargs: Any) -> Any:
            if self.left > 0 and (self.when is None or self.when(kwargs)):
                self.left -= 1
                raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, name)
            return real(**kwargs)

        return call


def test_delete_failing_after_the_upload_acknowledges_the_redelivery_without_recomputing(
    aws: MockAws, tiny_video: Path
) -> None:
    aws.send(job_body(37, aws.bucket, aws.put_video(tiny_video, 37)))
    detector = FakeDetector()
    worker = aws.worker(detector, max_jobs=2, visibility_timeout=2, heartbeat_seconds=1)
    worker.clients = WorkerClients(_Flaky(aws.sqs, "delete_message"), aws.s3, aws.dynamodb)
    stats = run(worker)
    assert (stats.done, stats.skipped) == (1, 1) and detector.calls == 2  # 6 frames in batches of 4: one run
    assert step(aws, 37)["state"] == "done" and aws.queue_counts() == (0, 0)


def test_finish_failing_after_the_upload_is_retried_to_one_done(aws: MockAws, tiny_video: Path) -> None:
    aws.send(job_body(38, aws.bucket, aws.put_video(tiny_video, 38)))
    worker = aws.worker(max_jobs=2)
    done_write = _Flaky(aws.dynamodb, "update_item", when=lambda kw: "result_file" in json.dumps(kw, default=str))
    worker.clients = WorkerClients(aws.sqs, aws.s3, done_write)
    worker.status.dynamodb = done_write
    stats = run(worker)
    assert (stats.failed, stats.done) == (1, 1)
    entry = step(aws, 38)
    assert entry["state"] == "done" and entry["attempt"] == 2
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="results/38/")["Contents"]]
    assert keys == ["results/38/human_detector/tiny.json"] and aws.queue_counts() == (0, 0)


def test_sigterm_during_model_load_stops_before_any_receive(aws: MockAws, tiny_video: Path) -> None:
    aws.send(job_body(39, aws.bucket, aws.put_video(tiny_video, 39)))
    worker: Any = None

    class SlowToLoad(FakeDetector):
        def _load(self) -> None:
            worker.request_stop("SIGTERM")  # arrives while the model loads
            time.sleep(0.5)

    worker = aws.worker(SlowToLoad())
    stats = run(worker)
    assert stats.stop_reason == "SIGTERM" and stats.received == 0
    assert aws.queue_counts() == (1, 0)  # untouched, for another worker


def test_a_second_sigterm_cancels_at_once(aws: MockAws, long_video: Path) -> None:
    aws.send(job_body(43, aws.bucket, aws.put_video(long_video, 43)))
    worker = aws.worker(FakeDetector(delay_s=0.3), grace_period_seconds=60)
    threading.Timer(1.0, worker.request_stop, kwargs={"reason": "SIGTERM"}).start()
    threading.Timer(1.5, worker.request_stop, kwargs={"reason": "SIGTERM"}).start()
    started = time.monotonic()
    stats = run(worker)
    assert stats.released == 1 and time.monotonic() - started < 10  # not the 60 s grace period
    assert step(aws, 43)["error_type"] == "Cancelled" and aws.queue_counts() == (1, 0)


def test_status_shows_a_run_whose_worker_died(aws: MockAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL on the last receive: SQS dead-letters the message, nobody writes the step again; its expired
    lease says the run is dead."""
    from .test_cli import invoke

    monkeypatch.setenv("COLUMNS", "200")
    store = StatusStore(aws.dynamodb, aws.resources.table)
    store.start(44, {"run_id": "killed", "message_id": "m", "attempt": 3, "lease_until": time.time() - 5})
    shown = invoke("status", "44")
    assert shown.exit_code == 0 and "running (lease expired)" in shown.output
    store.renew(44, "killed", 300)
    assert "lease expired" not in invoke("status", "44").output
