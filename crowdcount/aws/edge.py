"""The camera side of the upload-triggered path: capture frames, upload them to S3, read the answers back.

Each captured frame is uploaded as JPEG to ``s3://BUCKET/PREFIX/<run>/<n>.jpg`` and its S3 object-created
event handed to the handler (``invoke``: a callable, e.g. :meth:`EventHandler.handle` run in a background
thread the way Lambda runs asynchronously; moto's server does not deliver S3 notifications itself). The
answers are read from the results queue; the round-trip latency of a frame is from the start of its upload
to the receipt of its answer. Several clients may share one results queue: each deletes only the answers about
its own run's uploads and hands the others' back at once (see :meth:`EdgeClient.poll`). Frames come
from :func:`crowdcount.live.capture.capture` (nothing AWS about it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crowdcount.aws.errors import is_aws_exception, to_aws_error
from crowdcount.aws.events import object_created_event
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

#: How many times a client hands another client's answer back at once before it backs off (see ``_release``).
_RELEASE_AT_ONCE = 2


@dataclass
class EdgeReport:
    """What one ``edge`` run measured."""

    sent: int = 0
    answered: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(0)
        stats = (
            {
                "p50_ms": round(float(np.percentile(lat, 50)), 1),
                "p95_ms": round(float(np.percentile(lat, 95)), 1),
                "max_ms": round(float(lat.max()), 1),
            }
            if len(lat)
            else {"p50_ms": None, "p95_ms": None, "max_ms": None}
        )
        return {"sent": self.sent, "answered": self.answered, **stats, "missing": self.missing, "errors": self.errors}


class EdgeClient:
    """Uploads frames and collects their answers from the results queue.

    Args:
        s3 / sqs: boto3 clients; bucket, prefix: where frames go; results_queue_url: where answers come from.
        invoke: called with each upload's S3 event (in a background thread), or ``None`` when S3 itself
            triggers the handler (on AWS: a bucket notification to Lambda).
    """

    def __init__(
        self,
        s3: Any,
        sqs: Any,
        bucket: str,
        results_queue_url: str,
        prefix: str = "edge/",
        invoke: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.s3, self.sqs, self.bucket, self.results_queue_url = s3, sqs, bucket, results_queue_url
        self.prefix = prefix
        self.invoke = invoke
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-handler") if invoke else None
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self.report = EdgeReport()
        self.answers: dict[str, dict[str, Any]] = {}
        self.run_id = uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._receiver: threading.Thread | None = None
        self._foreign: dict[str, int] = {}  # MessageId -> times this client handed it back

    def start(self) -> None:
        """Receive answers in a background thread (long polling), so that each answer's arrival time is
        measured as it comes rather than when the capture loop next looks."""
        if self._receiver is None:
            self._receiver = threading.Thread(target=self._receive, name="edge-answers", daemon=True)
            self._receiver.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll(wait_s=1)
            except Exception as exc:
                if is_aws_exception(exc):  # the queue gone, AWS unreachable: one line, not a traceback a second
                    queue = self.results_queue_url.rsplit("/", 1)[-1]
                    logger.warning("%s (retrying in 1 s)", to_aws_error(exc, f"receiving answers from queue {queue}"))
                else:
                    logger.exception("receiving answers failed")
                self._stop.wait(1)

    def send(self, frame_bgr: np.ndarray, quality: int = 85) -> str:
        import cv2

        ok, jpeg = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ConfigError("a frame cannot be encoded as JPEG")
        key = f"{self.prefix}{self.run_id}/{self.report.sent + 1:06d}.jpg"
        with self._lock:
            self._sent[key] = time.perf_counter()
        try:
            response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=jpeg.tobytes(), ContentType="image/jpeg")
        except Exception as exc:
            if not is_aws_exception(exc):
                raise
            raise to_aws_error(exc, f"uploading a frame to s3://{self.bucket}/{key}") from None
        self.report.sent += 1
        if self._pool is not None:
            self._pool.submit(self._invoke, object_created_event(self.bucket, key, response.get("ETag", "")))
        return key

    def _invoke(self, event: dict[str, Any]) -> None:
        try:
            self.invoke(event)  # type: ignore[misc]
        except Exception:
            logger.exception("the handler failed on %s", event["Records"][0]["s3"]["object"]["key"])

    def _ours(self, answer: dict[str, Any]) -> bool:
        """Whether an answer is about an upload of this run (its key under ``<prefix><run_id>/``)."""
        key, bucket = answer.get("key"), answer.get("bucket", self.bucket)
        return isinstance(key, str) and key.startswith(f"{self.prefix}{self.run_id}/") and bucket == self.bucket

    def _release(self, message: dict[str, Any]) -> None:
        """Hand another client's answer back to the queue: visible again at once the first two times this client
        sees it (clients polling side by side may get it before its owner does), then after 1, 2, 4... (at most
        8) seconds, so that answers nobody collects (a client that has gone) neither keep this one busy nor hide
        the answers behind them."""
        seen = self._foreign.get(message["MessageId"], 0)
        if len(self._foreign) >= 10_000:
            self._foreign.clear()
        self._foreign[message["MessageId"]] = seen + 1
        timeout = 0 if seen < _RELEASE_AT_ONCE else min(2 ** (seen - _RELEASE_AT_ONCE), 8)
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.results_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=timeout
            )
        except Exception as exc:  # it comes back by itself when the queue's visibility timeout ends
            if not is_aws_exception(exc):
                raise
            logger.warning("could not hand back another client's answer %s: %s", message["MessageId"], exc)

    def poll(self, wait_s: int = 0) -> int:
        """Receive answers for the frames of this run; returns how many arrived.

        The results queue may be shared by several clients: answers about another run's uploads are handed back
        (see :meth:`_release`), never deleted; this run's answers (repeats of a retried event included) and
        bodies that are no answer at all (not a JSON object with a string ``key``: nobody's) are deleted."""
        response = self.sqs.receive_message(
            QueueUrl=self.results_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
        )
        arrived = 0
        for message in response.get("Messages", []):
            now = time.perf_counter()
            try:
                answer = json.loads(message["Body"])
            except ValueError:
                answer = {}
            if not isinstance(answer, dict):  # JSON, but no answer of anyone's: dropped
                answer = {}
            key = answer.get("key")
            if isinstance(key, str) and not self._ours(answer):
                self._release(message)
                continue
            if not isinstance(key, str):
                key = ""
            with self._lock:
                started = self._sent.pop(key, None)
            if started is not None:
                self.report.answered += 1
                self.report.latencies_ms.append((now - started) * 1000)
                self.answers[key] = answer
                if "error" in answer:
                    self.report.errors[key] = answer["error"]
                arrived += 1
            self.sqs.delete_message(QueueUrl=self.results_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return arrived

    def finish(self, timeout_s: float) -> EdgeReport:
        """Wait up to ``timeout_s`` for the outstanding answers; the rest are reported missing."""
        deadline = time.monotonic() + timeout_s
        while self._sent and time.monotonic() < deadline:
            if self._receiver is None:
                self.poll(wait_s=1)
            else:
                time.sleep(0.05)
        self._stop.set()
        if self._receiver is not None:
            self._receiver.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.report.missing = sorted(self._sent)
        return self.report
