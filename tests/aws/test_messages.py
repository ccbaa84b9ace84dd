"""Parsing queue message bodies: jobs, S3 event notifications, the stop command, and malformed bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# -- malformed bodies never escape as anything but MessageError (issue 16, item 1) -------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"VideoId": "²", "s3": {"bucket": "bkt", "key": "videos/1/video/a.mp4"}}',
        '{"VideoId": "٣", "s3": {"bucket": "bkt", "key": "videos/1/video/a.mp4"}}',
        '{"VideoId": 1, "s3": {"bucket": "bkt", "key": "videos/1/video/\\udc80.mp4"}}',
        s3_event("videos/²/video/x.mp4"),
        s3_event("videos/\udc80/video/x.mp4".encode("utf-8", "surrogatepass").decode("latin-1")),
        json.dumps({"Records": [{"s3": {"bucket": {"name": "bkt"}, "object": {"key": "videos/1/\ud800.mp4"}}}]}),
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '{"VideoId": ' + "[" * 900 + "]" * 900 + "}",
        '{"VideoId": ' + "9" * 5000 + "}",
        " " * (2 * 1024 * 1024),
        json.dumps({"Type": "Notification", "Message": json.dumps({"Type": "Notification", "Message": "{}"})}),
    ],
    ids=[
        "superscript-id",
        "arabic-digit-id",
        "lone-surrogate-key",
        "superscript-key",
        "mojibake-key",
        "surrogate-record-key",
        "deep-list",
        "deep-object",
        "deep-id",
        "huge-int",
        "huge-body",
        "envelopes",
    ],
)
def test_hostile_bodies_are_message_errors(body: str) -> None:
    with pytest.raises(MessageError):
        parse_message(body)


def test_superscript_digit_key_is_not_a_video_id() -> None:
    with pytest.raises(MessageError, match="VideoId is unknown"):
        video_id_from_key("videos/²/video/x.mp4", "videos/")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_id_like = st.one_of(_json, st.text(alphabet="0123456789²³¹٣०" + "\udc80 ", max_size=6), st.integers())
_key_like = st.one_of(st.text(), st.text(alphabet=st.characters(codec=None), max_size=40), _json)


def _check(body: str) -> None:
    try:
        parsed = parse_message(body, "videos/", "results/")
    except MessageError as exc:
        assert str(exc)
        assert exc.message.encode("utf-8")  # printable and storable (no lone surrogate in the reason)
        return
    for job in parsed.jobs:
        assert isinstance(job.video_id, int) and 0 <= job.video_id <= 10**18
        job.key.encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.text(alphabet=st.characters(codec=None))))
def test_fuzz_random_text_bodies(body: str) -> None:
    _check(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_fuzz_random_json_bodies(data: object) -> None:
    _check(json.dumps(data))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_id_like, _key_like, _json, st.sampled_from(["job", "event", "sns"]))
def test_fuzz_job_shaped_bodies(video_id: object, key: object, extra: object, shape: str) -> None:
    if shape == "job":
        data: object = {"VideoId": video_id, "s3": {"bucket": "bkt", "key": key}, "force": extra}
    else:
        record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "bkt"}, "object": {"key": key}}}
        data = {"Records": [record, extra]}
        if shape == "sns":
            data = {"Type": "Notification", "Message": json.dumps(data)}
    _check(json.dumps(data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"k":', '{"VideoId":[']))
def test_fuzz_deep_nesting(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"k":': "}", '{"VideoId":[': "]}"}[opener]
    _check(opener * depth + "1" + closer * depth)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(st.integers(900_000, 3_000_000), st.characters(codec=None))
def test_fuzz_huge_bodies(size: int, char: str) -> None:
    _check(json.dumps({"VideoId": 1, "s3": {"bucket": "bkt", "key": char * size}}))
    _check(char * size)


def test_s3_events_for_result_keys_are_ignored() -> None:
    # the worker's own uploads: under result_prefix, or in the layout without one (<prefix><id>/<step>/...)
    assert parse_message(s3_event("results/42/human_detector/clip.json"), "videos/", "results/").ignored
    assert parse_message(s3_event("videos/42/human_detector/clip.json"), "videos/", None).ignored
    assert parse_message(s3_event("videos/results/42/human_detector/c.json"), "videos/", "videos/results/").ignored
    mixed = json.loads(s3_event("videos/42/human_detector/clip.json"))
    mixed["Records"].append(json.loads(s3_event("videos/43/video/clip.mp4"))["Records"][0])
    assert [j.video_id for j in parse_message(json.dumps(mixed)).jobs] == [43]


def test_video_id_must_match_the_id_in_its_key() -> None:
    body = job_body(42, "bkt", "videos/43/video/clip.mp4")
    with pytest.raises(MessageError, match="'VideoId' 42 does not match the VideoId 43 of its key") as caught:
        parse_message(body)
    assert caught.value.video_id == 42  # type: ignore[attr-defined]
    assert parse_message(job_body(42, "bkt", "elsewhere/43/clip.mp4")).jobs[0].video_id == 42  # not our layout
