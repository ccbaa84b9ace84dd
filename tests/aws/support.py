"""Helpers of the AWS tests: a fake detector, tiny videos, moto's in-process AWS with the resources created."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import cv2
import numpy as np

from crowdcount.analyzer import VideoAnalyzer
from crowdcount.aws.resources import Resources, provision
from crowdcount.aws.session import AwsContext, make_context
from crowdcount.aws.worker import Worker, WorkerClients, WorkerSettings
from crowdcount.config import load_config
from crowdcount.detectors import Detections, Detector

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "vtest-15s.mp4"
SHARED_VTEST = REPO.parent / "shared" / "data" / "pets09" / "vtest.avi"
REGION = "us-east-1"


class FakeDetector(Detector):
    """A detector that finds one fixed box per frame, optionally slowly, optionally failing."""

    category = "Human"
    name = "fake"

    def __init__(self, delay_s: float = 0.0, fail: BaseException | None = None, max_batch_size: int = 4) -> None:
        super().__init__(0.1, max_batch_size)
        self.delay_s = delay_s
        self.fail = fail
        self.calls = 0
        self.frames = 0
        self.lock = threading.Lock()

    def _load(self) -> None:
        pass

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        with self.lock:
            self.calls += 1
            self.frames += len(frames)
        if self.fail is not None:
            raise self.fail
        if self.delay_s:
            time.sleep(self.delay_s)
        return [Detections(np.array([[1, 1, 10, 20]], np.float32), np.array([0.9]), np.array([1])) for _ in frames]

    def model_info(self) -> dict[str, Any]:
        return {"name": "fake"}


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> Path:
    """A tiny synthetic mp4 (mp4v) with a moving square."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write mp4v"
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 40, np.uint8)
        x = (i * 3) % (size[0] - 10)
        image[10:20, x : x + 10] = 255
        writer.write(image)
    writer.release()
    return path


def make_config(tmp_path: Path, **worker: Any) -> Any:
    """A config for tests: fast worker timings (overridable) and names as in variables.json."""
    settings = {
        "wait_time_seconds": 1,
        "visibility_timeout": 10,
        "heartbeat_seconds": 3,
        "grace_period_seconds": 5,
        "retry_delay_seconds": 0,
        "temp_dir": str(tmp_path),
    }
    settings.update(worker)
    return load_config(
        None,
        environ={},
        overrides={"worker": settings, "human_detection": {"frame_ratio": 0.5}},
    )


class MockAws:
    """Moto's in-process AWS with the resources of a config created; helpers to inspect queues."""

    def __init__(self, config: Any, tmp_path: Path) -> None:
        self.config = config
        self.tmp_path = tmp_path
        self.ctx: AwsContext = make_context(REGION, session=boto3.Session(region_name=REGION))
        self.resources = Resources.from_config(config)
        self.created = provision(self.ctx, self.resources)
        self.sqs = self.ctx.client("sqs")
        self.s3 = self.ctx.client("s3")
        self.dynamodb = self.ctx.client("dynamodb")
        self.queue_url = self.created["queue_url"]
        self.dlq_url = self.created["dlq_url"]
        self.bucket = self.resources.bucket

    def clients(self) -> WorkerClients:
        return WorkerClients(self.sqs, self.s3, self.dynamodb)

    def worker(self, detector: Detector | None = None, config: Any = None, **overrides: Any) -> Worker:
        config = config or self.config
        settings = WorkerSettings.from_config(config)
        if overrides:
            settings = WorkerSettings(**{**settings.__dict__, **overrides})
        analyzer = VideoAnalyzer([detector or FakeDetector()], frame_ratio=config.get("human_detection.frame_ratio"))
        return Worker(self.clients(), settings, analyzer, worker_id="test-worker")

    def put_video(self, path: Path, video_id: int, name: str | None = None) -> str:
        key = f"videos/{video_id}/video/{name or path.name}"
        self.s3.upload_file(str(path), self.bucket, key)
        return key

    def send(self, body: str, queue_url: str | None = None) -> str:
        return self.sqs.send_message(QueueUrl=queue_url or self.queue_url, MessageBody=body)["MessageId"]

    def queue_counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def drain(self, url: str, wait: int = 0) -> list[dict[str, Any]]:
        """Receive (and delete) every visible message of a queue."""
        out: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, MessageAttributeNames=["All"]
            )
            messages = response.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            out.extend(messages)
