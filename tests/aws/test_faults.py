"""Faults from the reliability audit (issue 16), each through the worker against moto's in-process AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crowdcount.aws.messages import job_body
from crowdcount.aws.worker import WorkerSettings

from .support import MockAws, make_config
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
