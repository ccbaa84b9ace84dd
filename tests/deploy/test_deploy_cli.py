"""``crowdcount deploy`` end to end against moto: what is sent, what is printed, and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crowdcount.aws import session as session_mod
from crowdcount.aws.deploy import image as image_mod
from crowdcount.aws.session import AwsContext
from crowdcount.cli.main import cli

from .conftest import Engine, Recorder, add_instance
from .helpers import (
    ACCOUNT,
    REGION,
    TEST_CONFIG,
    FakeDocker,
    by_digest,
    expected_taskdef,
    put_ecr_image,
    registry_digest,
    scratch_context,
)

REPOSITORY_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/crowdcount-worker"
TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/crowdcount-worker-task"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/crowdcount-worker-execution"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the test variables.json and no taskdefs/ (the packaged templates are used)."""
    (tmp_path / "variables.json").write_text(json.dumps(TEST_CONFIG))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def use_ctx(ctx: AwsContext, monkeypatch: pytest.MonkeyPatch) -> AwsContext:
    """Make the CLI use ``ctx`` (so the recorder sees its calls)."""
    monkeypatch.setattr(session_mod, "make_context", lambda region, endpoint=None: ctx)
    return ctx


def deploy(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["deploy", *args], env=env, catch_exceptions=False)


def nothing_created(ctx: AwsContext) -> None:
    """No task definition, role, log group, service or task was created."""
    assert ctx.client("ecs").list_task_definitions()["taskDefinitionArns"] == []
    assert ctx.client("iam").list_roles()["Roles"] == []
    assert ctx.client("logs").describe_log_groups()["logGroups"] == []
    clusters = ctx.client("ecs").list_clusters()["clusterArns"]
    for cluster in clusters:
        assert ctx.client("ecs").list_services(cluster=cluster)["serviceArns"] == []
        assert ctx.client("ecs").list_tasks(cluster=cluster)["taskArns"] == []


def test_dry_run_prints_the_task_definition_and_changes_nothing(
    workdir: Path, use_ctx: AwsContext, gpu_cluster: str
) -> None:
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    result = deploy("--dry-run", "--image", image)
    assert result.exit_code == 0, result.output
    image = by_digest(use_ctx.client("ecr"), image)  # deployed by digest, not by the tag
    header, _, rest = result.stdout.partition("\n")
    assert header == f"# task definition crowdcount-worker (rendered, image {image})"
    body, _, trailer = rest.rpartition("}\n")
    assert json.loads(body + "}") == expected_taskdef(image, TASK_ROLE, EXECUTION_ROLE)
    assert trailer == "# no registered revision of crowdcount-worker: deploying registers revision 1\n"
    nothing_created(use_ctx)


def test_run_task_and_wait(workdir: Path, use_ctx: AwsContext, gpu_cluster: str, recorder: Recorder) -> None:
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    result = deploy("--image", image, "--wait", "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    image = by_digest(use_ctx.client("ecr"), image)
    assert recorder.params("ecs", "RegisterTaskDefinition") == [expected_taskdef(image, TASK_ROLE, EXECUTION_ROLE)]
    run = recorder.params("ecs", "RunTask")
    assert run == [
        {
            "cluster": "crowdcount",
            "taskDefinition": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/crowdcount-worker:1",
            "count": 1,
            "startedBy": "crowdcount",
            "launchType": "EC2",
        }
    ]
    lines = result.stdout.splitlines()
    assert lines[:5] == [
        "done: created IAM role crowdcount-worker-task",
        "done: created IAM role crowdcount-worker-execution",
        "done: created log group /ecs/crowdcount-worker",
        "done: registered task definition crowdcount-worker:1",
        lines[4],
    ]
    assert lines[4].startswith("done: started task arn:aws:ecs:")
    assert lines[-1] == "task exit code: 0"
    assert "task: STOPPED" in result.stderr
    # Checks come first, changes after: the cluster and image are read before any role is made.
    ops = [o for _, o, _ in recorder.calls]
    assert ops.index("DescribeContainerInstances") < ops.index("CreateRole")
    assert ops.index("DescribeImages") < ops.index("CreateRole")


def test_unchanged_task_definition_is_reused_and_changes_are_diffed(
    workdir: Path, use_ctx: AwsContext, gpu_cluster: str
) -> None:
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    assert deploy("--service", "--image", image).exit_code == 0
    again = deploy("--service", "--image", image)
    assert again.exit_code == 0, again.output
    assert "task definition unchanged: crowdcount-worker:1" in again.stderr
    assert "done: updated service crowdcount-worker" in again.stdout
    assert len(use_ctx.client("ecs").list_task_definitions()["taskDefinitionArns"]) == 1

    dry = deploy("--dry-run", "--image", image, env={"CROWDCOUNT_DEPLOY__CPU": "1024"})
    assert dry.exit_code == 0, dry.output
    diff = dry.stdout.split("# difference from crowdcount-worker:1\n", 1)[1].splitlines()
    assert diff[:2] == ["--- crowdcount-worker:1", "+++ rendered"]
    assert '-  "cpu": "2048",' in diff
    assert '+  "cpu": "1024",' in diff
    assert len([line for line in diff if line.startswith(("-", "+"))]) == 4


def test_service_with_autoscaling(workdir: Path, use_ctx: AwsContext, gpu_cluster: str, recorder: Recorder) -> None:
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    result = deploy("--service", "--image", image)
    assert result.exit_code == 0, result.output
    assert recorder.params("ecs", "CreateService")[0]["desiredCount"] == 0
    assert recorder.params("application-autoscaling", "RegisterScalableTarget") == [
        {
            "ServiceNamespace": "ecs",
            "ResourceId": "service/crowdcount/crowdcount-worker",
            "ScalableDimension": "ecs:service:DesiredCount",
            "MinCapacity": 0,
            "MaxCapacity": 4,
        }
    ]
    policy = recorder.params("application-autoscaling", "PutScalingPolicy")[0]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 2.0
    assert recorder.params("ecs", "UpdateCluster") == [
        {"cluster": "crowdcount", "settings": [{"name": "containerInsights", "value": "enabled"}]}
    ]
    assert recorder.params("ecs", "RunTask") == []
    assert result.stdout.splitlines()[-2:] == [
        f"service: arn:aws:ecs:{REGION}:{ACCOUNT}:service/crowdcount/crowdcount-worker",
        "autoscaling: 0..4 tasks, 2 jobs per task",
    ]


def test_json_output(workdir: Path, use_ctx: AwsContext, gpu_cluster: str) -> None:
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    result = deploy("--image", image, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["taskdef_arn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/crowdcount-worker:1"
    assert data["mode"] == "task"
    assert data["task_arn"].startswith("arn:aws:ecs:")


def test_cpu_variant_dry_run(workdir: Path, use_ctx: AwsContext) -> None:
    client = use_ctx.client("ecs")
    client.create_cluster(clusterName="crowdcount")
    add_instance(use_ctx.session, "crowdcount", "c5.xlarge", gpu=False)
    result = deploy("--dry-run", "--cpu")
    assert result.exit_code == 0, result.output
    rendered = json.loads(result.stdout.split("\n", 1)[1].rpartition("}\n")[0] + "}")
    assert "placementConstraints" not in rendered
    assert "resourceRequirements" not in rendered["containerDefinitions"][0]
    assert rendered["containerDefinitions"][0]["image"] == f"{REPOSITORY_URI}:latest-cpu"


def test_build_and_push_to_ecr(
    workdir: Path, use_ctx: AwsContext, gpu_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = "sha256:" + "c" * 64
    fake = FakeDocker(build=[{"stream": "Step 1/9 : ARG BASE_IMAGE\n"}, {"aux": {"ID": "sha256:1"}}])
    fake.api.push_chunks = [{"status": "Pushed"}, {"aux": {"Tag": "latest", "Digest": digest}}]
    monkeypatch.setattr(image_mod, "docker_client", lambda: fake)
    (workdir / "Dockerfile").write_text("ARG BASE_IMAGE=tensorflow/tensorflow:2.18.0-gpu\nFROM ${BASE_IMAGE}\n")
    result = deploy("--cpu", "--skip-gpu-check")
    assert result.exit_code == 0, result.output
    build = fake.api.calls[0]
    assert build[0] == "build"
    assert build[1]["tag"] == "crowdcount-worker:latest-cpu"
    assert build[1]["buildargs"] == {"BASE_IMAGE": "tensorflow/tensorflow:2.18.0"}
    tag, push = fake.api.calls[1:]
    assert tag == ("tag", ("crowdcount-worker:latest-cpu", REPOSITORY_URI, "latest-cpu"))
    assert push[1][0] == REPOSITORY_URI
    assert push[1][1]["auth_config"]["serveraddress"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    assert "Step 1/9 : ARG BASE_IMAGE" in result.stderr
    assert "done: created ECR repository crowdcount-worker" in result.stdout
    assert f"done: pushed {REPOSITORY_URI}:latest-cpu ({digest})" in result.stdout
    registered = use_ctx.client("ecs").describe_task_definition(taskDefinition="crowdcount-worker")["taskDefinition"]
    assert registered["containerDefinitions"][0]["image"] == f"{REPOSITORY_URI}@{digest}"  # by digest, not the tag


# -- bad input: one line, non-zero exit, nothing half-registered without saying so ---------------------------


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_cluster_without_gpu_instances(workdir: Path, use_ctx: AwsContext) -> None:
    use_ctx.client("ecs").create_cluster(clusterName="crowdcount")
    add_instance(use_ctx.session, "crowdcount", "m5.large", gpu=False)
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    error = one_line_error(deploy("--image", image), 1)
    assert error.startswith("Error: ECS cluster 'crowdcount' has no GPU instances (1 without GPUs: ")
    nothing_created(use_ctx)


def test_missing_cluster(workdir: Path, use_ctx: AwsContext) -> None:
    error = one_line_error(deploy("--image", "x/y:1", "--cluster", "elsewhere"), 3)
    assert error.startswith("Error: ECS cluster 'elsewhere' does not exist")
    nothing_created(use_ctx)


def test_image_that_does_not_exist(workdir: Path, use_ctx: AwsContext, gpu_cluster: str) -> None:
    error = one_line_error(deploy("--image", f"{REPOSITORY_URI}:nope"), 1)
    assert error == (
        f"Error: image {REPOSITORY_URI}:nope does not exist in ECR "
        "(push it first, or leave out --image/--no-build to build it)"
    )
    error = one_line_error(deploy("--no-build"), 1)
    assert "ECR repository crowdcount-worker does not exist" in error
    nothing_created(use_ctx)


def test_no_docker_engine(workdir: Path, use_ctx: AwsContext, gpu_cluster: str, tmp_path: Path) -> None:
    (workdir / "Dockerfile").write_text("FROM scratch\n")
    error = one_line_error(deploy(env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}), 1)
    assert error.startswith("Error: no Docker engine is reachable (")
    nothing_created(use_ctx)
    assert use_ctx.client("ecr").describe_repositories()["repositories"] == []


def test_no_dockerfile(workdir: Path, use_ctx: AwsContext, gpu_cluster: str) -> None:
    error = one_line_error(deploy(), 2)
    assert error.startswith(f"Error: no Dockerfile in '{workdir}'")


def test_missing_template_value(workdir: Path, use_ctx: AwsContext, gpu_cluster: str) -> None:
    (workdir / "taskdefs").mkdir()
    (workdir / "taskdefs" / "task-definition.json").write_text(
        json.dumps({"family": "${family}", "containerDefinitions": [{"name": "w", "image": "${image_uri}"}]})
    )
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    error = one_line_error(deploy("--image", image), 2)
    assert error.startswith(
        "Error: taskdefs/task-definition.json: no value for ${image_uri} at containerDefinitions[0].image"
    )
    nothing_created(use_ctx)


def test_no_credentials(workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    error = one_line_error(deploy("--dry-run", "--image", "x/y:1"), 3)
    assert error.startswith("Error: no AWS credentials found while checking AWS credentials")
    assert "--endpoint-url" in error


@pytest.fixture
def html_endpoint() -> Iterator[str]:
    """An endpoint that answers every request with an HTML error page (a proxy, or a sandbox failing inside)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<!doctype html>\n<html><title>502 Bad Gateway</title></html>\n"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_an_endpoint_answering_html_is_one_line(workdir: Path, html_endpoint: str) -> None:
    error = one_line_error(deploy("--dry-run", "--image", "x/y:1", "--endpoint-url", html_endpoint), 3)
    assert error == (
        "Error: checking AWS credentials (sts get-caller-identity) failed: the endpoint answered with something "
        "that is not an AWS response (an HTML error page?) (check --endpoint-url)"
    )


def test_conflicting_options(workdir: Path) -> None:
    error = one_line_error(deploy("--service", "--wait"), 2)
    assert error == "Error: --wait waits for a one-off task's exit code (use it with --run-task)"
    error = one_line_error(deploy("--method", "cloudformation", "--run-task"), 2)
    assert error.startswith("Error: --method cloudformation deploys a service")


def test_failure_after_changes_says_what_was_done(workdir: Path, use_ctx: AwsContext, gpu_cluster: str) -> None:
    """moto's g4dn.xlarge has too little memory for the default 15 GiB task: registered, but not placed."""
    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    error = one_line_error(deploy("--image", image, env={"CROWDCOUNT_DEPLOY__MEMORY": "15360"}), 1)
    assert error == (
        "Error: ECS could not start a task of "
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/crowdcount-worker:1 on crowdcount: ECS placed no task; "
        "already done before this failure: created IAM role crowdcount-worker-task; "
        "created IAM role crowdcount-worker-execution; created log group /ecs/crowdcount-worker; "
        "registered task definition crowdcount-worker:1"
    )


def test_failed_task_exit_code_is_the_exit_status(
    workdir: Path, use_ctx: AwsContext, gpu_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crowdcount.aws.deploy import ecs as ecs_mod

    image = put_ecr_image(use_ctx.client("ecr"), "crowdcount-worker", "v1")
    real_wait = ecs_mod.wait_for_task

    def failing_wait(*args: Any, **kwargs: Any) -> Any:
        outcome = real_wait(*args, **kwargs)
        return ecs_mod.TaskOutcome(outcome.task_arn, "STOPPED", 2, "Essential container in task exited", None, None)

    monkeypatch.setattr(ecs_mod, "wait_for_task", failing_wait)
    result = deploy("--image", image, "--wait", "--poll-interval", "0")
    error = one_line_error(result, 2)
    assert error.startswith("Error: task arn:aws:ecs:")
    assert error.endswith("exited with code 2: Essential container in task exited")
    assert "task exit code: 2" in result.stdout


@pytest.mark.docker
def test_build_push_to_local_registry_and_run(
    docker_engine: Engine, workdir: Path, use_ctx: AwsContext, gpu_cluster: str
) -> None:
    """The whole path with a real engine: build a FROM-scratch image, push it to a local registry, register
    and run it (ECS in moto)."""
    scratch_context(workdir)
    result = deploy(
        "--registry", docker_engine.registry, "--tag", "e2e", "--wait", "--poll-interval", "0",
        env={"DOCKER_HOST": docker_engine.docker_host},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    image = f"{docker_engine.registry}/crowdcount-worker:e2e"
    digest = registry_digest(docker_engine.registry, "crowdcount-worker", "e2e")
    assert f"done: pushed {image} ({digest})" in result.stdout
    registered = use_ctx.client("ecs").describe_task_definition(taskDefinition="crowdcount-worker")["taskDefinition"]
    assert registered["containerDefinitions"][0]["image"] == image
    assert result.stdout.splitlines()[-1] == "task exit code: 0"


def test_a_dry_run_that_would_build_checks_the_dockerfile_and_the_docker_engine(
    workdir: Path, use_ctx: AwsContext, gpu_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine() -> Any:
        raise image_mod.DeployError("no Docker engine is reachable (Connection refused)", image_mod.NO_ENGINE_HINT)

    monkeypatch.setattr(image_mod, "docker_client", no_engine)
    result = deploy("--dry-run")
    assert result.exit_code == 0, result.output
    assert f"warning: no Dockerfile in {str(workdir.resolve())!r} (run from the repository root" in result.stderr
    (workdir / "Dockerfile").write_text("FROM scratch\n")
    result = deploy("--dry-run")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: no Docker engine is reachable (Connection refused) ({image_mod.NO_ENGINE_HINT})"]
    nothing_created(use_ctx)
    # the same check without --dry-run is the end, before anything changes: exit 1
    result = deploy()
    assert result.exit_code == 1 and result.stderr.startswith("Error: no Docker engine is reachable"), result.output
    nothing_created(use_ctx)
