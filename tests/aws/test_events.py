"""The upload-triggered handler: every record answered on its own, a size cap, the ETag pinned (issue 16, item 8)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pytest

from crowdcount.aws.events import EventHandler, answer_id, object_created_event
from crowdcount.detectors import Detections
from crowdcount.errors import AWSError

from .support import FakeDetector, MockAws


class Picky(FakeDetector):
    """Fails like OpenCV on 33-pixel-wide frames."""

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if frames[0].shape[1] == 33:
            raise cv2.error("OpenCV(4.10) resize.cpp:4152: error: (-215:Assertion failed) !ssize.empty()")
        return super()._detect(frames)


def png(width: int = 40) -> bytes:
    return cv2.imencode(".png", np.full((30, width, 3), 90, np.uint8))[1].tobytes()


def event_of(*keys_etags: tuple[str, str]) -> dict[str, Any]:
    return {"Records": [r for k, e in keys_etags for r in object_created_event("crowdcount-videos", k, e)["Records"]]}


def test_multi_record_event_with_mixed_outcomes(aws: MockAws) -> None:
    url = aws.sqs.create_queue(QueueName="results-mixed")["QueueUrl"]
    put = {
        k: aws.s3.put_object(Bucket=aws.bucket, Key=k, Body=b)["ETag"].strip('"')
        for k, b in [
            ("frames/ok.png", png()),
            ("frames/opencv.png", png(33)),
            ("frames/garbage.jpg", b"not an image"),
            ("frames/huge.png", png() + b"\0" * 5000),
            ("frames/changed.png", png()),
        ]
    }
    aws.s3.put_object(Bucket=aws.bucket, Key="frames/changed.png", Body=png(41))  # replaced after its event
    handler = EventHandler(aws.s3, aws.sqs, url, Picky(), max_object_bytes=4000)
    event = event_of(*put.items(), ("frames/missing.png", "abc"))
    answers = handler.handle(event)
    errors = {a["key"].split("/")[1]: a.get("error", "") for a in answers}
    assert errors["ok.png"] == "" and answers[0]["counts"] == {"Face": 1}
    assert "OpenCV" in errors["opencv.png"] and "resize.cpp" in errors["opencv.png"]
    assert errors["garbage.jpg"] == "not an image OpenCV can read"
    assert "over the limit of 4000" in errors["huge.png"]
    assert "changed since the event" in errors["changed.png"]
    assert "does not exist" in errors["missing.png"]
    sent = [json.loads(m["Body"]) for m in aws.drain(url)]
    assert sorted(a["key"] for a in sent) == sorted(a["key"] for a in answers) and len(sent) == 6
    assert answers[0]["answer_id"] == answer_id("crowdcount-videos", "frames/ok.png", put["frames/ok.png"])


def test_a_failed_send_raises_after_every_record_was_answered(aws: MockAws) -> None:
    url = aws.sqs.create_queue(QueueName="results-send")["QueueUrl"]
    for name in ("a.png", "b.png"):
        aws.s3.put_object(Bucket=aws.bucket, Key=f"frames/{name}", Body=png())
    sent: list[str] = []

    class FlakySqs:
        def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, str]:
            if json.loads(MessageBody)["key"] == "frames/a.png":
                raise aws.sqs.exceptions.QueueDoesNotExist({"Error": {"Code": "QueueDoesNotExist"}}, "SendMessage")
            sent.append(MessageBody)
            return {"MessageId": "1"}

    handler = EventHandler(aws.s3, FlakySqs(), url, FakeDetector())
    with pytest.raises(AWSError, match="1 of 2 answers could not be sent"):
        handler.handle(event_of(("frames/a.png", ""), ("frames/b.png", "")))
    assert [json.loads(b)["key"] for b in sent] == ["frames/b.png"]


def test_hostile_event_shapes_are_no_records() -> None:
    from crowdcount.aws.events import records

    for event in ({}, {"Records": None}, {"Records": [None, 3, {"eventName": "ObjectCreated:Put", "s3": []}]}):
        assert records(event) in ([], [("", "", "")])
