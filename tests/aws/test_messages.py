"""Parsing queue message bodies: jobs, S3 event notifications, the stop command, and malformed bodies."""

from __future__ import annotations

import json

import pytest

from crowdcount.aws.messages import Job, job_body, parse_message, video_id_from_key
from crowdcount.errors import MessageError


def s3_event(key: str, bucket: str = "crowdcount-videos", event: str = "ObjectCreated:Put") -> str:
    record = {"eventSource": "aws:s3", "eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}
    return json.dumps({"Records": [record]})


def test_job_body_round_trip() -> None:
    parsed = parse_message(job_body(42, "crowdcount-videos", "videos/42/video/clip.mp4"))
    assert parsed.jobs == [Job(42, "crowdcount-videos", "videos/42/video/clip.mp4")]
    assert not parsed.stop and parsed.ignored is None
    assert parse_message(job_body(1, "bkt", "a.mp4", force=True)).jobs[0].force is True


def test_video_id_given_as_text_or_integral_float_is_accepted() -> None:
    assert parse_message('{"VideoId": "7", "s3": {"bucket": "bkt", "key": "k.mp4"}}').jobs[0].video_id == 7
    assert parse_message('{"VideoId": 7.0, "s3": {"bucket": "bkt", "key": "k.mp4"}}').jobs[0].video_id == 7


def test_stop_command() -> None:
    assert parse_message('{"command": "stop"}').stop


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('"text"', "JSON object"),
        ("{}", "no 'VideoId'"),
        ('{"VideoId": true, "s3": {"bucket": "bkt", "key": "k"}}', "integer"),
        ('{"VideoId": -1, "s3": {"bucket": "bkt", "key": "k"}}', "between"),
        ('{"VideoId": 1.5, "s3": {"bucket": "bkt", "key": "k"}}', "integer"),
        ('{"VideoId": [1], "s3": {"bucket": "bkt", "key": "k"}}', "integer"),
        ('{"VideoId": 1}', "'s3'"),
        ('{"VideoId": 1, "s3": "s3://bkt/k"}', "'s3'"),
        ('{"VideoId": 1, "s3": {"bucket": "bkt"}}', "s3.key"),
        ('{"VideoId": 1, "s3": {"bucket": 5, "key": "k"}}', "s3.bucket"),
        ('{"VideoId": 1, "s3": {"bucket": "bkt", "key": ""}}', "s3.key"),
        ('{"VideoId": 1, "s3": {"bucket": "bkt", "key": "folder/"}}', "s3.key"),
        ('{"VideoId": 1, "s3": {"bucket": "bkt", "key": "k"}, "force": "yes"}', "force"),
        ('{"command": "explode"}', "unknown command"),
        ('{"Records": []}', "Records"),
        ('{"Records": [{"nothing": 1}]}', "S3 event record"),
    ],
)
def test_malformed_bodies_raise_message_error(body: str, needle: str) -> None:
    with pytest.raises(MessageError, match=needle):
        parse_message(body)


def test_message_error_carries_the_video_id_when_known() -> None:
    with pytest.raises(MessageError) as info:
        parse_message('{"VideoId": 12, "s3": {"bucket": "bkt"}}')
    assert info.value.video_id == 12  # type: ignore[attr-defined]
    with pytest.raises(MessageError) as info:
        parse_message('{"VideoId": "x"}')
    assert getattr(info.value, "video_id", None) is None


def test_s3_event_notification_gives_a_job_with_the_video_id_from_the_key() -> None:
    parsed = parse_message(s3_event("videos/42/video/my+clip%281%29.mp4"))
    assert parsed.jobs == [Job(42, "crowdcount-videos", "videos/42/video/my clip(1).mp4")]


def test_s3_event_wrapped_in_sns_is_accepted() -> None:
    envelope = json.dumps({"Type": "Notification", "Message": s3_event("videos/5/video/a.mp4")})
    assert parse_message(envelope).jobs[0].video_id == 5


def test_s3_events_without_video_id_are_malformed() -> None:
    with pytest.raises(MessageError, match="input prefix"):
        parse_message(s3_event("elsewhere/5/a.mp4"))
    with pytest.raises(MessageError, match="VideoId"):
        parse_message(s3_event("videos/abc/a.mp4"))


def test_s3_test_events_and_removals_are_ignored() -> None:
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    assert parse_message(test_event).ignored
    assert parse_message(s3_event("videos/5/a.mp4", event="ObjectRemoved:Delete")).ignored


def test_video_id_from_key() -> None:
    assert video_id_from_key("videos/9/video/x.mp4", "videos/") == 9
    assert video_id_from_key("9/x.mp4", "") == 9
