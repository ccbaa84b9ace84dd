"""ECS: GPU capacity checks, registering, running and waiting for tasks, the service, and autoscaling."""

from __future__ import annotations

from typing import Any

import pytest

from crowdcount.aws.deploy import ecs, scaling
from crowdcount.aws.deploy.errors import DeployError, TaskFailedError
from crowdcount.aws.session import AwsContext
from crowdcount.errors import AWSError

from .conftest import Recorder, add_instance
from .helpers import REGION

TASKDEF = {
    "family": "crowdcount-worker",
    "requiresCompatibilities": ["EC2"],
    "cpu": "2048",
    "memory": "4096",
    "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ g4dn.*"}],
    "containerDefinitions": [
        {
            "name": "worker",
            "image": "img:1",
            "essential": True,
            "memoryReservation": 4096,
            "resourceRequirements": [{"type": "GPU", "value": "1"}],
            "stopTimeout": 90,
        }
    ],
}


def make_cluster(ctx: AwsContext, name: str = "crowdcount", **kwargs: Any) -> Any:
    client = ctx.client("ecs")
    client.create_cluster(clusterName=name, **kwargs)
    return client


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([], "ECS cluster 'crowdcount' has no container instances, so no GPU instances"),
        (
            [("m5.large", False)],
            r"ECS cluster 'crowdcount' has no GPU instances \(1 without GPUs: i-\w+ \(m5.large\)\)",
        ),
        (
            [("p3.2xlarge", True)],
            r"has GPU instances, but none matches the placement constraint ecs.instance-type =~ g4dn.\*",
        ),
    ],
)
def test_cluster_without_usable_gpu_instances_says_so(
    ctx: AwsContext, instances: list[tuple[str, bool]], message: str
) -> None:
    client = make_cluster(ctx)
    for instance_type, gpu in instances:
        add_instance(ctx.session, "crowdcount", instance_type, gpu)
    with pytest.raises(DeployError, match=message) as info:
        ecs.check_gpu_capacity(client, "crowdcount", 1, "g4dn.*")
    assert "\n" not in str(info.value)
    assert "g4dn" in (info.value.hint or "") or "instance_type" in (info.value.hint or "")


def test_cluster_with_a_gpu_instance_passes(ctx: AwsContext) -> None:
    client = make_cluster(ctx)
    add_instance(ctx.session, "crowdcount", "m5.large", gpu=False)
    add_instance(ctx.session, "crowdcount", "g4dn.xlarge", gpu=True)
    capacity = ecs.check_gpu_capacity(client, "crowdcount", 1, "g4dn.*")
    assert len(capacity.instances) == 2
    assert len(capacity.matching_gpu_instances) == 1
    assert capacity.matching_gpu_instances[0].endswith("(g4dn.xlarge)")


def test_cpu_tasks_need_instances_but_no_gpu(ctx: AwsContext) -> None:
    client = make_cluster(ctx)
    with pytest.raises(DeployError, match="has no container instances"):
        ecs.check_gpu_capacity(client, "crowdcount", 0, None)
    add_instance(ctx.session, "crowdcount", "c5.xlarge", gpu=False)
    assert ecs.check_gpu_capacity(client, "crowdcount", 0, None).gpu_instances == []


def test_capacity_providers_make_an_empty_cluster_a_warning(ctx: AwsContext, caplog: pytest.LogCaptureFixture) -> None:
    client = make_cluster(ctx, capacityProviders=["FARGATE"])
    capacity = ecs.check_gpu_capacity(client, "crowdcount", 1, "g4dn.*")
    assert capacity.capacity_providers == ["FARGATE"]
    assert "may start some" in caplog.text


def test_missing_cluster_is_an_aws_error(ctx: AwsContext) -> None:
    with pytest.raises(AWSError, match="ECS cluster 'nope' does not exist") as info:
        ecs.check_gpu_capacity(ctx.client("ecs"), "nope", 1, "g4dn.*")
    assert info.value.exit_code == 3


def test_gpu_resource_registered_by_the_agent_counts_free_gpus() -> None:
    instance = {
        "registeredResources": [{"name": "GPU", "type": "STRINGSET", "stringSetValue": ["GPU-a", "GPU-b"]}],
        "remainingResources": [{"name": "GPU", "type": "STRINGSET", "stringSetValue": ["GPU-b"]}],
        "attributes": [],
    }
    assert ecs._has_gpu(instance) == (True, 1)
    assert ecs._has_gpu({"attributes": [{"name": "ecs.instance-type", "value": "m5.large"}]}) == (False, None)


@pytest.mark.parametrize(
    ("instance_type", "pattern", "matches"),
    [("g4dn.xlarge", "g4dn.*", True), ("g5.xlarge", "g4dn.*", False), ("p3.2xlarge", "p3.*|g4dn.*", True)],
)
def test_instance_type_patterns(instance_type: str, pattern: str, matches: bool) -> None:
    assert ecs.instance_type_matches(instance_type, pattern) is matches


def test_register_run_and_wait(ctx: AwsContext, gpu_cluster: str, recorder: Recorder) -> None:
    client = ctx.client("ecs")
    assert ecs.latest_task_definition(client, "crowdcount-worker") is None
    registered = ecs.register_task_definition(client, TASKDEF)
    assert recorder.params("ecs", "RegisterTaskDefinition") == [TASKDEF]
    assert ecs.latest_task_definition(client, "crowdcount-worker")["revision"] == 1
    launch = ecs.launch_options(ecs.describe_cluster(client, gpu_cluster))
    assert launch == {"launchType": "EC2"}
    task = ecs.run_task(client, gpu_cluster, registered["taskDefinitionArn"], launch)
    assert recorder.params("ecs", "RunTask") == [
        {
            "cluster": "crowdcount",
            "taskDefinition": registered["taskDefinitionArn"],
            "count": 1,
            "startedBy": "crowdcount",
            "launchType": "EC2",
        }
    ]
    statuses: list[str] = []
    sleeps: list[float] = []
    # moto's describe_tasks moves the task one state towards STOPPED per call.
    outcome = ecs.wait_for_task(client, gpu_cluster, task, poll=5, on_status=statuses.append, sleep=sleeps.append)
    assert statuses[-1] == "STOPPED"
    assert len(statuses) >= 2
    assert sleeps == [5] * (len(recorder.params("ecs", "DescribeTasks")) - 1)
    assert outcome.exit_code == 0
    ecs.check_outcome(outcome)


def test_default_capacity_provider_strategy_replaces_the_launch_type() -> None:
    info = {"defaultCapacityProviderStrategy": [{"capacityProvider": "gpu-asg", "weight": 1}]}
    assert ecs.launch_options(info) == {}


class StubEcs:
    """An ECS client that answers run_task / describe_tasks with canned responses."""

    def __init__(self, run: dict[str, Any] | None = None, tasks: list[dict[str, Any]] | None = None) -> None:
        self.run = run or {}
        self.tasks = list(tasks or [])

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        return self.run

    def describe_tasks(self, **kwargs: Any) -> dict[str, Any]:
        task = self.tasks.pop(0) if len(self.tasks) > 1 else self.tasks[0]
        return {"tasks": [task], "failures": []}


def test_unplaceable_task_explains_why() -> None:
    stub = StubEcs(run={"tasks": [], "failures": [{"arn": "arn:ci", "reason": "RESOURCE:GPU"}]})
    with pytest.raises(DeployError, match=r"ECS could not start a task .*: RESOURCE:GPU \(no container instance"):
        ecs.run_task(stub, "crowdcount", "arn:td", {"launchType": "EC2"})


def test_failed_task_exits_with_its_code() -> None:
    stopped = {
        "lastStatus": "STOPPED",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"name": "worker", "exitCode": 3, "reason": None}],
    }
    stub = StubEcs(tasks=[{"lastStatus": "PENDING"}, {"lastStatus": "RUNNING"}, stopped])
    outcome = ecs.wait_for_task(stub, "crowdcount", "arn:task", sleep=lambda s: None)
    assert outcome.exit_code == 3
    with pytest.raises(TaskFailedError, match="exited with code 3: Essential container in task exited") as info:
        ecs.check_outcome(outcome)
    assert info.value.exit_code == 3


def test_task_that_never_ran_has_no_exit_code() -> None:
    stopped = {
        "lastStatus": "STOPPED",
        "stoppedReason": "CannotPullContainerError: pull access denied",
        "containers": [{"name": "worker"}],
    }
    outcome = ecs.wait_for_task(StubEcs(tasks=[stopped]), "crowdcount", "arn:task", sleep=lambda s: None)
    with pytest.raises(TaskFailedError, match="stopped without an exit code: CannotPullContainerError") as info:
        ecs.check_outcome(outcome)
    assert info.value.exit_code == 1


def test_wait_times_out_and_says_the_task_keeps_running() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    stub = StubEcs(tasks=[{"lastStatus": "RUNNING"}])
    with pytest.raises(DeployError, match="still RUNNING after 30 s; it keeps running") as info:
        ecs.wait_for_task(stub, "c", "arn:task", timeout=30, poll=10, sleep=sleep, clock=lambda: now[0])
    assert info.value.hint == "stop it with: aws ecs stop-task --cluster c --task arn:task"


def test_service_is_created_then_updated(ctx: AwsContext, gpu_cluster: str, recorder: Recorder) -> None:
    client = ctx.client("ecs")
    first = ecs.register_task_definition(client, TASKDEF)["taskDefinitionArn"]
    arn, created = ecs.deploy_service(client, gpu_cluster, "crowdcount-worker", first, 0, {"launchType": "EC2"})
    assert created
    assert recorder.params("ecs", "CreateService") == [
        {
            "cluster": "crowdcount",
            "serviceName": "crowdcount-worker",
            "taskDefinition": first,
            "desiredCount": 0,
            "deploymentConfiguration": {
                "maximumPercent": 100,
                "minimumHealthyPercent": 0,
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
            "propagateTags": "SERVICE",
            "tags": [{"key": "app", "value": "crowdcount"}],
            "launchType": "EC2",
        }
    ]
    second = ecs.register_task_definition(client, TASKDEF)["taskDefinitionArn"]
    assert ecs.deploy_service(client, gpu_cluster, "crowdcount-worker", second, 0, force_new_deployment=True) == (
        arn,
        False,
    )
    update = recorder.params("ecs", "UpdateService")
    assert update == [
        {
            "cluster": "crowdcount",
            "service": "crowdcount-worker",
            "taskDefinition": second,
            "deploymentConfiguration": ecs.DEPLOYMENT_CONFIGURATION,
            "forceNewDeployment": True,
        }
    ]
    assert "desiredCount" not in update[0]  # autoscaling owns it
    service = ecs.describe_service(client, gpu_cluster, "crowdcount-worker")
    assert service is not None and service["taskDefinition"] == second


def test_container_insights(ctx: AwsContext) -> None:
    client = make_cluster(ctx)
    assert not ecs.container_insights_enabled(ecs.describe_cluster(client, "crowdcount"))
    ecs.enable_container_insights(client, "crowdcount")
    assert ecs.container_insights_enabled(ecs.describe_cluster(client, "crowdcount"))


EXPECTED_SCALING_POLICY = {
    "TargetValue": 2.0,
    "CustomizedMetricSpecification": {
        "Metrics": [
            {
                "Id": "visible",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateNumberOfMessagesVisible",
                        "Dimensions": [{"Name": "QueueName", "Value": "crowdcount-human-detection"}],
                    },
                    "Stat": "Average",
                },
                "ReturnData": False,
            },
            {
                "Id": "inflight",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateNumberOfMessagesNotVisible",
                        "Dimensions": [{"Name": "QueueName", "Value": "crowdcount-human-detection"}],
                    },
                    "Stat": "Average",
                },
                "ReturnData": False,
            },
            {
                "Id": "tasks",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "ECS/ContainerInsights",
                        "MetricName": "RunningTaskCount",
                        "Dimensions": [
                            {"Name": "ClusterName", "Value": "crowdcount"},
                            {"Name": "ServiceName", "Value": "crowdcount-worker"},
                        ],
                    },
                    "Stat": "Average",
                },
                "ReturnData": False,
            },
            {
                "Id": "backlog_per_task",
                "Label": "SQS backlog per running task",
                "Expression": (
                    "IF(FILL(tasks, 0) > 0, (visible + inflight) / FILL(tasks, 0), (visible + inflight) * 2 * 2)"
                ),
                "ReturnData": True,
            },
        ]
    },
    "ScaleOutCooldown": 60,
    "ScaleInCooldown": 300,
    "DisableScaleIn": False,
}


def test_autoscaling_on_backlog_per_task(ctx: AwsContext, gpu_cluster: str, recorder: Recorder) -> None:
    client = ctx.client("ecs")
    arn = ecs.register_task_definition(client, TASKDEF)["taskDefinitionArn"]
    ecs.deploy_service(client, gpu_cluster, "crowdcount-worker", arn, 0)
    autoscaling = ctx.client("application-autoscaling")
    summary = scaling.configure_autoscaling(
        autoscaling, gpu_cluster, "crowdcount-worker", "crowdcount-human-detection", 0, 4, 2
    )
    assert recorder.params("application-autoscaling", "RegisterScalableTarget") == [
        {
            "ServiceNamespace": "ecs",
            "ResourceId": "service/crowdcount/crowdcount-worker",
            "ScalableDimension": "ecs:service:DesiredCount",
            "MinCapacity": 0,
            "MaxCapacity": 4,
        }
    ]
    assert recorder.params("application-autoscaling", "PutScalingPolicy") == [
        {
            "PolicyName": "crowdcount-worker-sqs-backlog-per-task",
            "ServiceNamespace": "ecs",
            "ResourceId": "service/crowdcount/crowdcount-worker",
            "ScalableDimension": "ecs:service:DesiredCount",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": EXPECTED_SCALING_POLICY,
        }
    ]
    target = autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in target] == [
        ("service/crowdcount/crowdcount-worker", 0, 4)
    ]
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == ["crowdcount-worker-sqs-backlog-per-task"]
    assert summary["policy_arn"] == policies[0]["PolicyARN"]
    # Idempotent: a second deploy updates the same target and policy.
    scaling.configure_autoscaling(autoscaling, gpu_cluster, "crowdcount-worker", "crowdcount-human-detection", 1, 6, 3)
    target = autoscaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in target] == [(1, 6)]
    assert len(autoscaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]) == 1


def test_backlog_expression_scales_out_from_zero_tasks() -> None:
    """Evaluate the expression as CloudWatch would: at zero tasks any job exceeds the target."""

    def evaluate(visible: float, inflight: float, tasks: float | None, target: float) -> float:
        filled = 0 if tasks is None else tasks
        return (visible + inflight) / filled if filled > 0 else (visible + inflight) * 2 * target

    assert scaling.backlog_expression(2) == (
        "IF(FILL(tasks, 0) > 0, (visible + inflight) / FILL(tasks, 0), (visible + inflight) * 2 * 2)"
    )
    assert evaluate(1, 0, None, 2) > 2  # one job, no task yet: start one
    assert evaluate(0, 0, None, 2) == 0  # nothing to do: stay at zero
    assert evaluate(3, 1, 2, 2) == 2  # on target
    assert evaluate(0, 1, 1, 2) < 2  # working on its last job: below target, but not zero
    assert REGION == "us-east-1"
