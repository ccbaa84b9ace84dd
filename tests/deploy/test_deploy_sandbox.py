"""``crowdcount deploy`` against the sandbox: a moto server subprocess reached over HTTP, through
``--endpoint-url`` and through ``$AWS_ENDPOINT_URL``."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli

from .conftest import add_instance
from .helpers import REGION, REPO, TEST_CONFIG, put_ecr_image
from conftest import running_sandbox


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


@pytest.fixture(scope="module")
def crowdcount_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`crowdcount sandbox --port 0` as a real process (what docs/deploy.md deploys against); its endpoint."""
    folder = tmp_path_factory.mktemp("crowdcount-sandbox")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTO_", "CROWDCOUNT_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with running_sandbox(folder, env, folder / "sandbox.err") as endpoint:
        yield endpoint


def deploy_setup(
    endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: str, tag: str
) -> tuple[boto3.Session, str]:
    """A variables.json in the working folder, cluster ``cluster`` and a worker image tagged ``tag`` in the
    sandbox at ``endpoint``: the session and the image URI."""
    (tmp_path / "variables.json").write_text(json.dumps(TEST_CONFIG))
    monkeypatch.chdir(tmp_path)
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    session.client("ecs", endpoint_url=endpoint).create_cluster(clusterName=cluster)
    return session, put_ecr_image(session.client("ecr", endpoint_url=endpoint), "crowdcount-worker", tag)


def test_deploy_runs_against_crowdcount_sandbox(
    crowdcount_sandbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sandbox's IAM knows AWS's managed policies: deploy attaches AmazonECSTaskExecutionRolePolicy to the
    # execution role it creates (without them: "NoSuchEntity: Policy ... does not exist or is not attachable")
    session, image = deploy_setup(crowdcount_sandbox, tmp_path, monkeypatch, "sandbox", "v1")
    add_instance(session, "sandbox", "g4dn.xlarge", gpu=True, endpoint=crowdcount_sandbox)
    result = CliRunner().invoke(
        cli,
        ["deploy", "--cluster", "sandbox", "--image", image, "--wait", "--poll-interval", "0"],
        env={"AWS_ENDPOINT_URL": crowdcount_sandbox},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "task exit code: 0"
    iam = session.client("iam", endpoint_url=crowdcount_sandbox)
    attached = iam.list_attached_role_policies(RoleName="crowdcount-worker-execution")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonECSTaskExecutionRolePolicy"]


def test_an_html_error_page_from_the_endpoint_is_one_line(
    crowdcount_sandbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's run_task fails with an HTML 500 page on a cluster without instances (--skip-gpu-check skips the look)
    _, image = deploy_setup(crowdcount_sandbox, tmp_path, monkeypatch, "empty", "v2")
    result = CliRunner().invoke(
        cli,
        ["deploy", "--cluster", "empty", "--image", image, "--skip-gpu-check"],
        env={"AWS_ENDPOINT_URL": crowdcount_sandbox},
    )
    assert result.exit_code == 3
    line = result.stderr.splitlines()[-1]  # progress lines before it
    assert line.startswith("Error: running a task of arn:aws:ecs:")
    assert " on empty failed: 500: the endpoint answered HTTP 500 with an HTML page, not an AWS error" in line
    assert not any(text.startswith(("<", "</")) for text in result.stderr.splitlines())
