"""Worker settings that SQS cannot honour are refused at start (exit 2), not found out twelve hours into a job."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.aws.settings import MAX_VISIBILITY, WorkerSettings
from crowdcount.cli.main import cli
from crowdcount.errors import ConfigError

from .support import make_config


def test_a_job_may_not_outlast_the_messages_twelve_hours(tmp_path: Path) -> None:
    """SQS refuses to keep a message invisible past 12 hours from its receipt: a job allowed to run longer would
    lose its message mid-job (taken for a lost lease: left running, received again, cut short again)."""
    longest = MAX_VISIBILITY - 300
    assert WorkerSettings.from_config(make_config(tmp_path, max_job_seconds=longest, visibility_timeout=300))
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_config(make_config(tmp_path, max_job_seconds=longest + 1, visibility_timeout=300))
    assert str(caught.value) == (
        "config key 'worker.max_job_seconds' must be at most 43200 - worker.visibility_timeout (300) = 42900: SQS "
        "keeps a message invisible at most 12 hours from its receipt, got 42901"
    )


def test_the_worker_command_says_so_with_exit_2(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDCOUNT_WORKER__MAX_JOB_SECONDS", "86400")
    result = CliRunner().invoke(cli, ["worker", "--endpoint-url", "http://127.0.0.1:9"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: config key 'worker.max_job_seconds' must be at most 43200 - worker.visibility_timeout (300) = 42900: "
        "SQS keeps a message invisible at most 12 hours from its receipt, got 86400\n"
    )
