"""``crowdcount deploy`` against the sandbox: a moto server subprocess reached over HTTP, through
``--endpoint-url`` and through ``$AWS_ENDPOINT_URL``."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli

from .conftest import add_instance
from .helpers import REGION, TEST_CONFIG, put_ecr_image


@pytest.fixture
def sandbox(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """A reset sandbox with a GPU cluster and the worker image in its ECR; a session for checking it."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10)
    (tmp_path / "variables.json").write_text(json.dumps(TEST_CONFIG))
    monkeypatch.chdir(tmp_path)
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    session.client("ecs", endpoint_url=moto_server).create_cluster(clusterName="sandbox")
    add_instance(session, "sandbox", "g4dn.xlarge", gpu=True, endpoint=moto_server)
    return session


def test_run_task_through_endpoint_option(moto_server: str, sandbox: boto3.Session) -> None:
    image = put_ecr_image(sandbox.client("ecr", endpoint_url=moto_server), "crowdcount-worker", "v1")
    result = CliRunner().invoke(
        cli,
        ["deploy", "--endpoint-url", moto_server, "--cluster", "sandbox", "--image", image, "--wait",
         "--poll-interval", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "task exit code: 0"
    ecs = sandbox.client("ecs", endpoint_url=moto_server)
    registered = ecs.describe_task_definition(taskDefinition="crowdcount-worker")["taskDefinition"]
    container = registered["containerDefinitions"][0]
    assert container["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert registered["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:ecs.instance-type =~ g4dn.*"}
    ]
    assert registered["taskRoleArn"].endswith(":role/crowdcount-worker-task")
    roles = {r["RoleName"] for r in sandbox.client("iam", endpoint_url=moto_server).list_roles()["Roles"]}
    assert {"crowdcount-worker-task", "crowdcount-worker-execution"} <= roles


def test_service_through_environment_endpoint(moto_server: str, sandbox: boto3.Session) -> None:
    image = put_ecr_image(sandbox.client("ecr", endpoint_url=moto_server), "crowdcount-worker", "v1")
    result = CliRunner().invoke(
        cli,
        ["deploy", "--service", "--cluster", "sandbox", "--image", image],
        env={"AWS_ENDPOINT_URL": moto_server},
    )
    assert result.exit_code == 0, result.output
    services = sandbox.client("ecs", endpoint_url=moto_server).describe_services(
        cluster="sandbox", services=["crowdcount-worker"]
    )["services"]
    assert [s["status"] for s in services] == ["ACTIVE"]
    targets = sandbox.client("application-autoscaling", endpoint_url=moto_server).describe_scalable_targets(
        ServiceNamespace="ecs"
    )["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        ("service/sandbox/crowdcount-worker", 0, 4)
    ]
