"""``crowdcount results VIDEO_ID -o -``: the result file to stdout, byte for byte (moto's in-process mock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.aws.status import StatusStore
from crowdcount.cli.main import cli

from .support import MockAws

pytestmark = pytest.mark.usefixtures("keep_logging")


def _done(aws: MockAws, step: str, key: str, body: bytes) -> None:
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=body)
    store = StatusStore(aws.dynamodb, aws.resources.table, step)
    store.start(8, {"run_id": "r1", "attempt": 1})
    store.finish(8, "r1", "done", {"result_file": {"bucket": aws.bucket, "key": key}})


def test_a_result_that_is_not_text_goes_to_stdout_unchanged(aws: MockAws) -> None:
    """Another system's step may name a binary result (a clip, an image): no UnicodeDecodeError traceback."""
    body = b"\x00\x00\x00\x18ftypmp42\xff\xfe\x80"
    _done(aws, "video_split", "videos/8/video_split/part-1.mp4", body)
    result = CliRunner().invoke(cli, ["results", "8", "--step", "video_split", "-o", "-"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert (result.exit_code, result.stdout_bytes, result.stderr) == (0, body, "")


def test_a_text_result_gets_its_final_newline(aws: MockAws) -> None:
    _done(aws, "human_detector", "videos/8/human_detector/clip.json", '{"frames": [], "name": "café"}'.encode())
    result = CliRunner().invoke(cli, ["results", "8", "-o", "-"])
    assert (result.exit_code, result.stdout_bytes) == (0, '{"frames": [], "name": "café"}\n'.encode())


@pytest.mark.parametrize(("key", "name"), [("videos/8/split/", "split-8"), ("videos/8/..", "split-8")])
def test_a_result_key_without_a_file_name_is_saved_under_a_name_of_its_own(
    aws: MockAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, name: str
) -> None:
    """Before: the key's empty last segment made the default folder itself the file (``crowdcount_results`` a file,
    every later ``results`` failing with 'File exists'), and ``..`` tried to replace the folder's parent."""
    monkeypatch.chdir(tmp_path)
    _done(aws, "split", key, b"{}")
    result = CliRunner().invoke(cli, ["results", "8", "--step", "split"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"s3://{aws.bucket}/{key} -> crowdcount_results/{name}\n",
        "",
    )
    assert (tmp_path / "crowdcount_results" / name).read_bytes() == b"{}"
    assert sorted(p.name for p in (tmp_path / "crowdcount_results").iterdir()) == [name]  # no .part left
