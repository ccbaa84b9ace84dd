"""The submit / status / results / worker / sandbox commands in-process (moto's mock), their errors and exit codes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crowdcount.aws.messages import job_body
from crowdcount.aws.resources import Resources, provision
from crowdcount.aws.sandbox import start_sandbox
from crowdcount.aws.session import make_context
from crowdcount.aws.status import StatusStore, serialize
from crowdcount.cli.main import cli
from crowdcount.config import load_config
from crowdcount.errors import AWSError

from .support import REGION, MockAws

pytestmark = pytest.mark.usefixtures("keep_logging")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_submit_status_results(aws: MockAws, tiny_video: Path, tmp_path: Path) -> None:
    result = invoke("submit", str(tiny_video), "--video-id", "3", "--json")
    assert result.exit_code == 0, result.output
    submitted = json.loads(result.output)
    assert submitted["s3"] == {"bucket": aws.bucket, "key": "videos/3/video/tiny.mp4"}
    body = json.loads(aws.drain(aws.queue_url)[0]["Body"])
    assert body == {"VideoId": 3, "s3": submitted["s3"]}

    status = invoke("status", "3")
    assert status.exit_code == 0 and "no steps recorded yet" in status.output
    missing = invoke("results", "3")
    assert missing.exit_code == 1 and "has no 'human_detector' step yet" in missing.output

    store = StatusStore(aws.dynamodb, aws.resources.table)
    store.start(3, {"run_id": "r1", "attempt": 1})
    running = invoke("results", "3")
    assert running.exit_code == 1 and "is running" in running.output
    aws.s3.put_object(Bucket=aws.bucket, Key="videos/3/human_detector/tiny.json", Body=b'{"frames": []}')
    store.finish(3, "r1", "done", {"result_file": {"bucket": aws.bucket, "key": "videos/3/human_detector/tiny.json"}})

    table = invoke("status", "3")
    assert table.exit_code == 0 and "human_detector" in table.output and "done" in table.output
    assert f"s3://{aws.bucket}/videos/3/human_detector/tiny.json" in table.output  # whole, not cut with "…"
    document = json.loads(invoke("status", "3", "--json").output)
    assert document["video"] == submitted["s3"] and document["process_steps"][0]["state"] == "done"

    out = tmp_path / "out"
    fetched = invoke("results", "3", "-o", str(out) + "/")
    assert fetched.exit_code == 0 and (out / "tiny.json").read_text() == '{"frames": []}'
    assert invoke("results", "3", "-o", "-").output.strip() == '{"frames": []}'


def test_status_and_results_read_other_systems_steps_as_they_are(aws: MockAws) -> None:
    """Other steps of the shared document are someone else's: a result_file that is a URI, a summary of numbers."""
    steps = [
        {"step": "video_split", "state": "done", "result_file": "s3://other/split.json"},
        {"step": "counter", "state": "done", "result_file": {"bucket": "b", "key": "k"}, "summary": {"Human": 5}},
    ]
    aws.dynamodb.put_item(
        TableName=aws.resources.table, Item={"VideoId": {"N": "77"}, "process_steps": serialize(steps)}
    )
    table = CliRunner().invoke(cli, ["status", "77"])
    assert table.exit_code == 0, table.output
    assert "│ video_split │ done  │ -       │ -       │ s3://other/split.json │" in table.stdout
    assert "│ counter     │ done  │ -       │ -       │ s3://b/k              │" in table.stdout
    result = CliRunner().invoke(cli, ["results", "77", "--step", "video_split"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "Error: step 'video_split' of VideoId 77 is done but names no result file\n"


def test_unknown_video_is_exit_1(aws: MockAws) -> None:
    result = invoke("status", "404")
    assert result.exit_code == 1 and "no document for VideoId 404" in result.output


def test_submit_of_a_missing_file_is_an_error(aws: MockAws, tmp_path: Path) -> None:
    result = invoke("submit", str(tmp_path / "nope.mp4"), "--video-id", "1")
    assert result.exit_code == 1 and "is not a file" in result.output
    assert aws.queue_counts() == (0, 0)


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (
            "videos/6/video/x.mp4",
            "Error: --key: 'VideoId' 5 does not match the VideoId 6 of its key 'videos/6/video/x.mp4' "
            "(send the VideoId of the video the key names)\n",
        ),
        ("videos/5/", "Error: --key: 's3.key' must be the key of an S3 object, got 'videos/5/'\n"),
    ],
)
def test_submit_refuses_a_key_the_worker_would_dead_letter(
    aws: MockAws, tiny_video: Path, key: str, error: str
) -> None:
    result = CliRunner().invoke(cli, ["submit", str(tiny_video), "--video-id", "5", "--key", key])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", error)
    assert aws.queue_counts() == (0, 0)
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0  # nothing uploaded
    assert aws.dynamodb.scan(TableName=aws.resources.table)["Items"] == []


def test_submit_to_a_missing_queue_is_exit_3(aws: MockAws, tiny_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDCOUNT_AWS_QUEUES__HUMAN_DETECTION", "nope")
    result = invoke("submit", str(tiny_video), "--video-id", "1")
    assert result.exit_code == 3 and "queue 'nope' does not exist" in result.output


def test_submit_to_a_missing_table_uploads_nothing(
    aws: MockAws, tiny_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDCOUNT_DYNAMODB__TABLE_ID", "nope")
    result = CliRunner().invoke(cli, ["submit", str(tiny_video), "--video-id", "1"])
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == (
        "Error: reading VideoId 1 from table 'nope': ResourceNotFoundException: Requested resource not found\n"
    )
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0  # no video left without a document
    assert aws.queue_counts() == (0, 0)


def test_worker_command_with_an_unknown_detector_is_exit_2(
    aws: MockAws, tiny_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command builds its detectors from the config (after the AWS checks): an unknown one is exit 2."""
    aws.send(job_body(1, aws.bucket, aws.put_video(tiny_video, 1)))
    monkeypatch.setenv("CROWDCOUNT_HUMAN_DETECTION__DETECTORS", '[["NoSuchDetector", {}]]')
    result = invoke("worker", "--max-jobs", "1", "--wait-time", "0")
    assert result.exit_code == 2 and "NoSuchDetector" in result.output
    assert aws.queue_counts() == (1, 0)  # untouched


def test_worker_rejects_inconsistent_timings(aws: MockAws) -> None:
    result = invoke("worker", "--visibility-timeout", "5", "--heartbeat", "5")
    assert result.exit_code == 2 and "heartbeat_seconds" in result.output


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_sandbox_on_an_ipv6_address_gives_a_bracketed_endpoint(aws_env: None) -> None:
    config = load_config(None, environ={})
    with start_sandbox(config, host="::1", port=0) as box:
        port = int(box.endpoint.rsplit(":", 1)[1])
        assert box.endpoint == f"http://[::1]:{port}"
        ctx = make_context(REGION, box.endpoint)
        assert ctx.client("sqs").get_queue_url(QueueName=config.get("aws_queues.human_detection"))["QueueUrl"]


def test_sandbox_library_serves_provisions_and_refuses_a_taken_port(aws_env: None) -> None:
    config = load_config(None, environ={})
    with start_sandbox(config, port=0) as box:
        ctx = make_context(REGION, box.endpoint)
        assert ctx.client("sqs").get_queue_url(QueueName=config.get("aws_queues.human_detection"))
        again = provision(ctx, Resources.from_config(config))  # idempotent
        assert again["queue_url"] == box.created["queue_url"]
        port = int(box.endpoint.rsplit(":", 1)[1])
        with pytest.raises(AWSError, match=f"cannot listen on 127.0.0.1:{port}"):
            start_sandbox(config, port=port)
