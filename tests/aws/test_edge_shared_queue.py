"""Several ``crowdcount edge`` clients share one results queue: each consumes its own answers and leaves the
others' on the queue for their owners (moto's in-process mock)."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pytest

from crowdcount.aws.edge import EdgeClient

from .support import MockAws

pytestmark = pytest.mark.usefixtures("keep_logging")


def _answer(bucket: str, key: str) -> str:
    return json.dumps({"answer_id": key, "bucket": bucket, "key": key, "counts": {"Face": 0}})


def test_an_answer_for_another_client_is_left_on_the_queue_for_it(aws: MockAws) -> None:
    url = aws.sqs.create_queue(QueueName="answers")["QueueUrl"]
    mine, theirs = EdgeClient(aws.s3, aws.sqs, aws.bucket, url), EdgeClient(aws.s3, aws.sqs, aws.bucket, url)
    frame = np.zeros((8, 8, 3), np.uint8)
    their_key = theirs.send(frame)
    aws.sqs.send_message(QueueUrl=url, MessageBody=_answer(aws.bucket, their_key))
    assert mine.poll() == 0
    assert aws.queue_counts(url) == (1, 0)  # not deleted, and visible again at once
    assert theirs.poll() == 1
    assert (theirs.report.answered, sorted(theirs.answers)) == (1, [their_key])
    assert aws.queue_counts(url) == (0, 0)


def test_a_repeated_answer_of_this_run_is_consumed(aws: MockAws) -> None:
    url = aws.sqs.create_queue(QueueName="answers")["QueueUrl"]
    client = EdgeClient(aws.s3, aws.sqs, aws.bucket, url)
    key = client.send(np.zeros((8, 8, 3), np.uint8))
    for _ in range(2):  # a retried event answers twice with the same answer_id
        aws.sqs.send_message(QueueUrl=url, MessageBody=_answer(aws.bucket, key))
    assert client.poll() == 1
    assert client.report.answered == 1
    assert aws.queue_counts(url) == (0, 0)


def test_many_answers_for_others_do_not_hide_this_clients_answer(aws: MockAws) -> None:
    """More than one receive's worth (10) of other clients' answers ahead of ours: ours still arrives."""
    url = aws.sqs.create_queue(QueueName="answers")["QueueUrl"]
    client = EdgeClient(aws.s3, aws.sqs, aws.bucket, url)
    key = client.send(np.zeros((8, 8, 3), np.uint8))
    for n in range(12):
        aws.sqs.send_message(QueueUrl=url, MessageBody=_answer(aws.bucket, f"edge/deadbeef/{n + 1:06d}.jpg"))
    aws.sqs.send_message(QueueUrl=url, MessageBody=_answer(aws.bucket, key))
    arrived = sum(client.poll() for _ in range(4))
    assert (arrived, client.report.answered, sorted(client.answers)) == (1, 1, [key])
    assert sum(aws.queue_counts(url)) == 12  # the others' answers are all still there


def test_another_clients_answer_seen_twice_is_still_handed_back_at_once(aws: MockAws) -> None:
    """Clients polling side by side may each get an answer before its owner does: the owner's latency is not
    made longer until the answer keeps coming back to this client (its owner may be gone)."""
    url = aws.sqs.create_queue(QueueName="answers")["QueueUrl"]
    client = EdgeClient(aws.s3, aws.sqs, aws.bucket, url)
    aws.sqs.send_message(QueueUrl=url, MessageBody=_answer(aws.bucket, "edge/0wner000/000001.jpg"))
    for _ in range(2):
        assert client.poll() == 0
        assert aws.queue_counts(url) == (1, 0)
    assert client.poll() == 0
    assert aws.queue_counts(url) == (0, 1)  # the third time: back after a second, not at once


def test_a_results_queue_that_fails_is_one_warning_line_not_a_traceback(
    aws: MockAws, caplog: pytest.LogCaptureFixture
) -> None:
    url = aws.sqs.create_queue(QueueName="answers")["QueueUrl"]
    client = EdgeClient(aws.s3, aws.sqs, aws.bucket, url)
    aws.sqs.delete_queue(QueueUrl=url)
    with caplog.at_level(logging.WARNING, "crowdcount.aws.edge"):
        thread = threading.Thread(target=client._receive)
        thread.start()
        time.sleep(0.3)
        client._stop.set()
        thread.join(5)
    [record] = [r for r in caplog.records if r.name == "crowdcount.aws.edge"]
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert record.getMessage() == (
        "receiving answers from queue answers: AWS.SimpleQueueService.NonExistentQueue: The specified queue does "
        "not exist. (retrying in 1 s)"
    )
