"""``crowdcount edge`` against moto's in-process mock: bad input and a missing bucket are one line, not a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli

from .support import MockAws

pytestmark = pytest.mark.usefixtures("keep_logging")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="crowdcount")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("every", ["nan", "inf", "infs", "-inf"])
def test_an_every_that_is_not_a_finite_duration_is_one_line(every: str, tiny_video: Path) -> None:
    code, out, err = run("edge", str(tiny_video), "--every", every, "--frames", "1", "--no-invoke")
    assert (code, out) == (2, "")
    assert err == f"Error: --every {every!r} is not a duration (e.g. --every 0.5s)\n"


def test_a_bucket_that_does_not_exist_is_exit_3_and_one_line(
    aws: MockAws, tiny_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDCOUNT_VIDEO_SPLIT__OUTPUT_BUCKET", "no-such-bucket")
    code, out, err = run("edge", str(tiny_video), "--frames", "1", "--no-invoke", "--timeout", "0")
    assert (code, out) == (3, "")
    assert re.fullmatch(
        r"Error: uploading a frame to s3://no-such-bucket/edge/[0-9a-f]{8}/000001\.jpg: NoSuchBucket: "
        r"The specified bucket does not exist\n",
        err,
    ), err


def test_answers_that_are_not_objects_are_dropped_not_received_forever(aws: MockAws) -> None:
    """The results queue is shared: a body that is JSON but no answer (no object, no string key) is nobody's and
    is deleted; one about another client's upload stays on the queue for it."""
    from crowdcount.aws.edge import EdgeClient

    url = aws.sqs.create_queue(QueueName="answers")["QueueUrl"]
    client = EdgeClient(aws.s3, aws.sqs, aws.bucket, url)
    for body in ("[1, 2]", '"text"', "3", '{"key": "elsewhere"}', '{"key": [1]}'):
        aws.sqs.send_message(QueueUrl=url, MessageBody=body)
    assert client.poll() == 0
    assert aws.queue_counts(url) == (1, 0)
    assert json.loads(aws.sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"]) == {"key": "elsewhere"}
