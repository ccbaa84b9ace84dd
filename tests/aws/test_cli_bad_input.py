"""`crowdcount results` given an output it cannot write (moto's in-process AWS): one line, exit 2, nothing left."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.aws.status import StatusStore
from crowdcount.cli.main import cli

from .support import MockAws

pytestmark = pytest.mark.usefixtures("keep_logging")


def test_results_into_a_path_under_a_file_is_one_line(aws: MockAws, tmp_path: Path) -> None:
    key = "videos/3/human_detector/tiny.json"
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=b'{"frames": []}')
    store = StatusStore(aws.dynamodb, aws.resources.table)
    store.ensure_document(3, {"bucket": aws.bucket, "key": "videos/3/video/tiny.mp4"})
    store.start(3, {"run_id": "r1", "attempt": 1})
    store.finish(3, "r1", "done", {"result_file": {"bucket": aws.bucket, "key": key}})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "r.json"
    result = CliRunner().invoke(cli, ["results", "3", "-o", str(target)], catch_exceptions=False)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"Error: --output {str(target)!r} cannot be written: File exists (give a file or folder you can write to)\n"
    )
    assert blocker.read_text() == "x"


def test_a_malformed_region_is_a_one_line_config_error() -> None:
    from crowdcount.aws.session import make_context
    from crowdcount.errors import ConfigError

    ctx = make_context("us east 1", endpoint_url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"^'us east 1' is not an AWS region name \(set aws_region"):
        ctx.client("sqs")
    assert ctx.client("sqs", "eu-west-1").meta.region_name == "eu-west-1"
