"""The backlog-per-task target has a floor everywhere it can be set: the config (``deploy.backlog_per_task`` >= 1),
the CloudFormation parameter (``MinValue: 1``) and the library (:func:`scaling.target_tracking_configuration`)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from crowdcount.aws.deploy import cloudformation as cfn
from crowdcount.aws.deploy import scaling
from crowdcount.config import load_config
from crowdcount.errors import ConfigError

from .helpers import REPO

TEMPLATES = [REPO / "taskdefs" / "cloudformation.yaml", REPO / "crowdcount/aws/deploy/templates/cloudformation.yaml"]


@pytest.mark.parametrize("path", TEMPLATES, ids=["taskdefs", "packaged"])
def test_the_template_refuses_a_backlog_per_task_below_one(path: Any) -> None:
    """0 would be a target that the zero-task branch (backlog * 2 * 0 = 0) never exceeds, so no task would ever
    start; a negative one Application Auto Scaling refuses only after the stack has made the service."""
    spec = cfn.load_template(path.read_text(), str(path))["Parameters"]["BacklogPerTask"]
    assert (spec["Type"], spec["Default"], spec["MinValue"]) == ("Number", 2, 1)
    with pytest.raises(ConfigError, match=r"^config key 'deploy.backlog_per_task' must be >= 1, got 0$"):
        load_config(None, environ={}, overrides={"deploy": {"backlog_per_task": 0}})


@pytest.mark.parametrize("target", [0, -2, 0.0, math.nan, math.inf, True])
def test_a_target_that_is_no_positive_number_is_refused(target: float) -> None:
    with pytest.raises(ConfigError) as caught:
        scaling.target_tracking_configuration("q", "c", "s", target)
    assert str(caught.value) == (
        f"the backlog per task must be a number above 0, got {target!r} "
        "(set deploy.backlog_per_task to 1 or more queued jobs per task)"
    )


def test_a_large_target_is_written_exactly() -> None:
    """``:g`` wrote 1234567 as 1.23457e+06: rounded, and in a form CloudWatch metric math does not document."""
    assert scaling.backlog_expression(1234567) == (
        "IF(FILL(tasks, 0) > 0, (visible + inflight) / FILL(tasks, 0), (visible + inflight) * 2 * 1234567)"
    )
    assert scaling.backlog_expression(2.5).endswith("* 2 * 2.5)")
    assert scaling.target_tracking_configuration("q", "c", "s", 1234567)["TargetValue"] == 1234567.0
