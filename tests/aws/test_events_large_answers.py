"""An answer over the results queue's message size limit (a crowded frame, a long clip's tracking section) is sent
without its large parts rather than lost (moto's in-process mock, a queue with a 1 KiB limit)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from crowdcount.aws.events import EventHandler, answer_id, object_created_event
from crowdcount.detectors import Detections
from crowdcount.errors import AWSError

from .support import FakeDetector, MockAws


class Crowd(FakeDetector):
    """Forty faces in every frame."""

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        boxes = np.array([[i, 1, i + 5, 8] for i in range(40)], np.float32)
        return [Detections(boxes, np.full(40, 0.9), np.ones(40, np.int64)) for _ in frames]


def _frame(aws: MockAws, key: str) -> str:
    body = cv2.imencode(".png", np.full((30, 60, 3), 90, np.uint8))[1].tobytes()
    return aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=body)["ETag"].strip('"')


def test_an_answer_too_large_for_the_queue_is_sent_without_its_faces(aws: MockAws) -> None:
    url = aws.sqs.create_queue(QueueName="small-answers", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    etag = _frame(aws, "frames/crowd.png")
    answers = EventHandler(aws.s3, aws.sqs, url, Crowd()).handle(
        object_created_event(aws.bucket, "frames/crowd.png", etag)
    )
    [sent] = [json.loads(m["Body"]) for m in aws.drain(url)]
    assert sent == answers[0]
    elapsed = sent.pop("elapsed_s")
    assert isinstance(elapsed, float)
    size = sent.pop("omitted_reason")
    assert size.startswith("the whole answer is ") and size.endswith(
        " bytes, over the results queue's message size limit"
    )
    assert sent == {
        "answer_id": answer_id(aws.bucket, "frames/crowd.png", etag),
        "bucket": aws.bucket,
        "key": "frames/crowd.png",
        "etag": etag,
        "kind": "image",
        "width": 60,
        "height": 30,
        "counts": {"Face": 40},
        "omitted": ["faces"],
    }


def test_an_answer_that_fits_is_sent_whole(aws: MockAws) -> None:
    url = aws.sqs.create_queue(QueueName="big-answers")["QueueUrl"]
    etag = _frame(aws, "frames/crowd.png")
    EventHandler(aws.s3, aws.sqs, url, Crowd()).handle(object_created_event(aws.bucket, "frames/crowd.png", etag))
    [sent] = [json.loads(m["Body"]) for m in aws.drain(url)]
    assert len(sent["faces"]) == 40 and "omitted" not in sent


def test_a_queue_that_takes_not_even_the_small_answer_still_raises(aws: MockAws) -> None:
    url = aws.sqs.create_queue(QueueName="tiny-answers", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    key = "frames/" + "k" * 900 + ".png"
    etag = _frame(aws, key)
    with pytest.raises(AWSError, match=r"^1 of 1 answers could not be sent"):
        EventHandler(aws.s3, aws.sqs, url, Crowd()).handle(object_created_event(aws.bucket, key, etag))
    assert aws.drain(url) == []
