"""The worker's hold on SQS messages: :class:`MessageQueue` opens the queue (and finds its dead-letter queue) and
receives; each received message is a :class:`Lease` that is extended while its job runs, then deleted,
retried, released or dead-lettered; :class:`Heartbeat` is the thread that extends it.

Nothing here knows videos or jobs: the worker loop (:mod:`crowdcount.aws.worker`) decides what becomes of a
message (:func:`crowdcount.aws.decide.decide`) and the lease carries it out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crowdcount.aws.errors import error_code, is_aws_exception, is_not_found, to_aws_error
from crowdcount.aws.joblog import JOB_LOG as logger
from crowdcount.aws.joblog import log_event
from crowdcount.errors import AWSError

#: SQS's answers to a visibility change of a message this worker no longer holds (the lease is lost).
LOST_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)


def queue_url(sqs: Any, name: str, endpoint_url: str | None, missing_hint: str) -> str:
    """The URL of queue ``name``: :class:`AWSError` saying it does not exist (with ``missing_hint``), or why it
    could not be asked."""
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except Exception as exc:
        if is_not_found(exc):
            raise AWSError(f"queue {name!r} does not exist", missing_hint) from None
        raise to_aws_error(exc, f"opening queue {name!r}", endpoint_url) from None


class QueueGone(AWSError):
    """The queue disappeared while being served."""


class MessageQueue:
    """The queue a worker serves, and its dead-letter queue.

    Args:
        sqs: a boto3 SQS client (injected: AWS, the sandbox or moto alike).
        name: the queue's name; dlq: the dead-letter queue's name when the queue's redrive policy cannot be read.
        visibility_timeout: seconds a received message stays invisible (and each extension's length).
        endpoint_url: named in connection errors.
    """

    def __init__(
        self, sqs: Any, name: str, dlq: str | None, visibility_timeout: int, endpoint_url: str | None = None
    ) -> None:
        self.sqs = sqs
        self.name = name
        self.dlq_name = dlq
        self.visibility_timeout = visibility_timeout
        self.endpoint_url = endpoint_url
        self.url = ""
        self.dlq_url: str | None = None
        self.max_receive_count: int | None = None
        #: Whether the queue has a redrive policy (``None``: unknown, not allowed to read it).
        self.has_redrive: bool | None = None

    def open(self) -> None:
        """Find the queue (:class:`AWSError` when it does not answer), its redrive policy and the DLQ.

        Only ``GetQueueUrl`` on the queue is required; the DLQ is found from the redrive policy
        (``GetQueueAttributes``), else by name. When neither is allowed, bad messages are left to the redrive
        policy instead of being sent to the DLQ at once (see :meth:`Lease.dead_letter`)."""
        self.url = queue_url(self.sqs, self.name, self.endpoint_url, "create it, or start `crowdcount sandbox`")
        dlq_name = self.dlq_name
        try:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
            redrive_text = attributes.get("Attributes", {}).get("RedrivePolicy")
            self.has_redrive = bool(redrive_text)
            if redrive_text:
                redrive = json.loads(redrive_text)
                dlq_name = str(redrive["deadLetterTargetArn"]).rsplit(":", 1)[-1]
                self.max_receive_count = int(redrive["maxReceiveCount"])
            else:
                logger.warning("queue %s has no redrive policy: failing jobs are retried until they expire", self.name)
        except Exception as exc:
            if not is_aws_exception(exc):
                raise
            logger.warning(
                "cannot read the redrive policy of queue %s (%s): assuming it has one",
                self.name,
                error_code(exc) or type(exc).__name__,
            )
        if dlq_name:
            try:
                self.dlq_url = self.sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
            except Exception as exc:
                if not is_aws_exception(exc):
                    raise
                logger.warning(
                    "cannot open the dead-letter queue %s (%s): bad messages are left to the queue's redrive policy",
                    dlq_name,
                    error_code(exc) or type(exc).__name__,
                )

    def receive(self, wait_s: int) -> list[Lease]:
        """At most one message (long poll of ``wait_s``); :class:`QueueGone` when the queue was deleted,
        :class:`AWSError` when SQS does not answer."""
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=wait_s,
                VisibilityTimeout=self.visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as exc:
            if is_not_found(exc):
                raise QueueGone(f"queue {self.name!r} does not exist (deleted while serving it)") from None
            if is_aws_exception(exc):
                raise to_aws_error(exc, f"receiving from queue {self.name!r}", self.endpoint_url) from None
            raise
        return [Lease(self, message) for message in response.get("Messages", [])]

    def change_visibility(self, receipt: str, seconds: int) -> None:
        """Make a message visible again after ``seconds`` (0: at once); a failure is logged, not raised (the
        message comes back after its visibility timeout anyway)."""
        try:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt, VisibilityTimeout=seconds)
        except Exception as exc:
            logger.warning("could not change a message's visibility to %ss: %s", seconds, exc)


@dataclass
class Lease:
    """One received message, held (invisible to other workers) until it is deleted, retried, released or
    dead-lettered."""

    queue: MessageQueue
    message: dict[str, Any]
    #: monotonic time until which the message's visibility is known to hold.
    visible_until: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.visible_until = time.monotonic() + self.queue.visibility_timeout

    @property
    def receipt(self) -> str:
        return str(self.message["ReceiptHandle"])

    @property
    def message_id(self) -> str:
        return str(self.message.get("MessageId", ""))

    @property
    def body(self) -> str:
        return str(self.message.get("Body", ""))

    @property
    def attempt(self) -> int:
        """How many times the message was received (1 the first time)."""
        return int(self.message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))

    def extend(self) -> str | None:
        """Extend the visibility by the queue's visibility timeout. ``None`` when done or when it failed for a
        passing reason (logged); the reason when the message is no longer this worker's (the lease is lost)."""
        try:
            self.queue.sqs.change_message_visibility(
                QueueUrl=self.queue.url, ReceiptHandle=self.receipt, VisibilityTimeout=self.queue.visibility_timeout
            )
        except Exception as exc:
            code = error_code(exc)
            if code in LOST_RECEIPT_CODES:
                return f"the message is no longer this worker's ({code})"
            logger.warning(
                "could not extend the visibility of message %s (%s): %s",
                self.message_id,
                code or type(exc).__name__,
                "another worker may receive it" if code else exc,
                extra={"event": "heartbeat failed", "message_id": self.message_id},
            )
            if time.monotonic() >= self.visible_until - 1:
                return "the message's visibility could not be extended before it lapsed"
            return None
        self.visible_until = time.monotonic() + self.queue.visibility_timeout
        logger.debug("visibility of message %s extended", self.message_id)
        return None

    def delete(self) -> None:
        """Acknowledge: the message is gone. A failure is logged: the message comes back, and a job already done
        is then acknowledged without recomputing."""
        try:
            self.queue.sqs.delete_message(QueueUrl=self.queue.url, ReceiptHandle=self.receipt)
        except Exception as exc:
            logger.warning("could not delete message %s: %s", self.message_id, exc)

    def retry(self, delay_s: int) -> None:
        """Visible again in ``delay_s`` seconds."""
        self.queue.change_visibility(self.receipt, delay_s)

    def release(self) -> None:
        """Visible again at once, for another worker."""
        self.queue.change_visibility(self.receipt, 0)

    def dead_letter(self, reason: str, worker_id: str) -> None:
        """Send the message to the DLQ (with the reason as attributes), then delete it: in that order, so a
        crash in between duplicates it rather than losing it.

        Without a DLQ this worker may write to (not found, or not allowed: a least-privilege role need not
        grant ``sqs:SendMessage`` on it), the message is made visible again at once and the queue's redrive
        policy moves it to the DLQ after ``maxReceiveCount`` receives; meanwhile each redelivery is recognised
        (same message, recorded as a permanent error) and released again without recomputing. Only a queue
        known to have no redrive policy gets the message deleted (logged as dropped)."""
        queue = self.queue
        if queue.dlq_url is not None:
            attributes = {
                "crowdcount-error": {"DataType": "String", "StringValue": reason[:1000] or "error"},
                "crowdcount-source-message-id": {"DataType": "String", "StringValue": self.message_id or "?"},
                "crowdcount-attempt": {"DataType": "Number", "StringValue": str(self.attempt)},
                "crowdcount-worker": {"DataType": "String", "StringValue": worker_id},
            }
            try:
                queue.sqs.send_message(
                    QueueUrl=queue.dlq_url,
                    MessageBody=self.message.get("Body") or "(empty)",
                    MessageAttributes=attributes,
                )
            except Exception as exc:
                logger.error(
                    "could not send message %s to the dead-letter queue (%s): leaving it to the redrive policy",
                    self.message_id,
                    error_code(exc) or exc,
                )
            else:
                self.delete()
                log_event(logging.WARNING, "message sent to the dead-letter queue", ctx=self, reason=reason)
                return
        if queue.has_redrive is False:
            self.delete()
            log_event(logging.ERROR, "message dropped", ctx=self, reason=f"{reason} (no dead-letter queue, no redrive)")
            return
        self.release()
        log_event(logging.WARNING, "message left to the redrive policy", ctx=self, reason=reason)


class Heartbeat:
    """A thread that calls ``beat()`` every ``interval_s`` (extend the lease, renew the job's) and ``tick()``
    about four times a second (watch the stop deadline) until :meth:`stop`. An exception in either is logged and
    the thread goes on: a heartbeat never dies while its job runs."""

    def __init__(self, interval_s: float, beat: Callable[[], None], tick: Callable[[], None] | None = None) -> None:
        self.interval_s = interval_s
        self.beat = beat
        self.tick = tick
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, name="crowdcount-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.thread.start()
        return self

    def _run(self) -> None:
        next_beat = time.monotonic() + self.interval_s
        while not self.finished.is_set():
            now = time.monotonic()
            try:
                if self.tick is not None:
                    self.tick()
                if now >= next_beat:
                    next_beat = now + self.interval_s
                    self.beat()
            except Exception:
                logger.exception("heartbeat failure (the next beat tries again)")
            self.finished.wait(min(max(next_beat - now, 0.01), 0.25))

    def stop(self) -> None:
        """End the beats (before the message is deleted, released or dead-lettered); waits for the thread."""
        self.finished.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
