"""ECS: the cluster's GPU capacity, task definitions, one-off tasks (and waiting for their exit code), and
the long-running service.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from crowdcount.aws.deploy.errors import DeployError, TaskFailedError, aws_errors, error_code
from crowdcount.errors import AWSError

logger = logging.getLogger(__name__)

#: Attributes the ECS agent sets on instances with NVIDIA GPUs (besides the ``GPU`` registered resource).
GPU_ATTRIBUTE_PREFIX = "ecs.capability.nvidia-driver-version."
GPU_ATTRIBUTE = "ecs.capability.gpu-driver-version"
#: A task stopped by ECS rather than by its own exit: these stop codes mean it never ran to completion.
_PLACEMENT_HINTS = {
    "RESOURCE:GPU": "no container instance has a free GPU",
    "RESOURCE:MEMORY": "no container instance has enough free memory (deploy.memory)",
    "RESOURCE:CPU": "no container instance has enough free CPU (deploy.cpu)",
    "MemberOf placement constraint unsatisfied": "no instance matches the instance-type placement constraint",
}


@dataclass
class ClusterCapacity:
    """What the cluster can run: instances, those with GPUs, those matching the instance-type pattern."""

    cluster: str
    instances: list[str] = field(default_factory=list)
    gpu_instances: list[str] = field(default_factory=list)
    matching_gpu_instances: list[str] = field(default_factory=list)
    free_gpus: int | None = None
    capacity_providers: list[str] = field(default_factory=list)


def describe_cluster(ecs: Any, cluster: str) -> dict[str, Any]:
    """The ACTIVE cluster ``cluster`` (with settings); :class:`AWSError` when it does not exist."""
    with aws_errors(f"describing ECS cluster {cluster}"):
        found = ecs.describe_clusters(clusters=[cluster], include=["SETTINGS"])["clusters"]
    active = [c for c in found if c.get("status") == "ACTIVE"]
    if not active:
        raise AWSError(f"ECS cluster {cluster!r} does not exist", "create it with GPU instances, or set deploy.cluster")
    return active[0]


def instance_type_matches(instance_type: str, pattern: str) -> bool:
    """Whether ``instance_type`` matches an ECS ``=~`` pattern such as ``g4dn.*`` (a regular expression;
    shell-style where it is not a valid one)."""
    try:
        return re.fullmatch(pattern, instance_type) is not None
    except re.error:
        return fnmatch.fnmatchcase(instance_type, pattern)


def _has_gpu(instance: Mapping[str, Any]) -> tuple[bool, int | None]:
    for resource in instance.get("registeredResources", []):
        if resource.get("name") == "GPU" and resource.get("stringSetValue"):
            remaining: Mapping[str, Any] = next(
                (r for r in instance.get("remainingResources", []) if r.get("name") == "GPU"), {"stringSetValue": []}
            )
            return True, len(remaining.get("stringSetValue") or [])
    names = {a.get("name", "") for a in instance.get("attributes", [])}
    if GPU_ATTRIBUTE in names or any(n.startswith(GPU_ATTRIBUTE_PREFIX) for n in names):
        return True, None
    return False, None


def cluster_capacity(ecs: Any, cluster: str, instance_pattern: str | None) -> ClusterCapacity:
    """The ACTIVE container instances of ``cluster`` and which have GPUs (the ``GPU`` resource the ECS GPU
    AMI registers, or the agent's NVIDIA driver attribute) and match ``instance_pattern``."""
    info = describe_cluster(ecs, cluster)
    capacity = ClusterCapacity(cluster=cluster, capacity_providers=list(info.get("capacityProviders") or []))
    arns: list[str] = []
    with aws_errors(f"listing the container instances of {cluster}"):
        for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster, status="ACTIVE"):
            arns += page["containerInstanceArns"]
    free = 0
    free_known = True
    for start in range(0, len(arns), 100):
        with aws_errors(f"describing the container instances of {cluster}"):
            described = ecs.describe_container_instances(cluster=cluster, containerInstances=arns[start : start + 100])
        for instance in described["containerInstances"]:
            attributes = {a.get("name"): a.get("value") for a in instance.get("attributes", [])}
            instance_type = attributes.get("ecs.instance-type") or "?"
            label = f"{instance.get('ec2InstanceId', instance['containerInstanceArn'])} ({instance_type})"
            capacity.instances.append(label)
            has_gpu, gpus_free = _has_gpu(instance)
            if not has_gpu:
                continue
            capacity.gpu_instances.append(label)
            if instance_pattern is None or instance_type_matches(instance_type, instance_pattern):
                capacity.matching_gpu_instances.append(label)
                if gpus_free is None:
                    free_known = False
                else:
                    free += gpus_free
    capacity.free_gpus = free if free_known and capacity.matching_gpu_instances else None
    return capacity


def check_gpu_capacity(ecs: Any, cluster: str, gpu_count: int, instance_pattern: str | None) -> ClusterCapacity:
    """Raise :class:`DeployError` saying so when ``cluster`` has no instance that can run a task asking
    for ``gpu_count`` GPUs on ``instance_pattern`` instances. A cluster with capacity providers may start
    instances on demand, so there an empty cluster is only a warning."""
    capacity = cluster_capacity(ecs, cluster, instance_pattern)
    if gpu_count <= 0:
        if not capacity.instances and not capacity.capacity_providers:
            raise DeployError(
                f"ECS cluster {cluster!r} has no container instances", "register EC2 instances with the cluster"
            )
        return capacity
    if capacity.matching_gpu_instances:
        return capacity
    if capacity.gpu_instances:
        problem = (
            f"ECS cluster {cluster!r} has GPU instances, but none matches the placement constraint "
            f"ecs.instance-type =~ {instance_pattern} ({', '.join(capacity.gpu_instances[:5])})"
        )
        hint = "set deploy.instance_type to match them, or add matching instances"
    elif capacity.instances:
        problem = (
            f"ECS cluster {cluster!r} has no GPU instances ({len(capacity.instances)} without GPUs: "
            f"{', '.join(capacity.instances[:5])})"
        )
        hint = "add instances of a GPU type (e.g. g4dn.xlarge) running the ECS GPU-optimized AMI, or deploy --cpu"
    else:
        problem = f"ECS cluster {cluster!r} has no container instances, so no GPU instances"
        hint = "add instances of a GPU type (e.g. g4dn.xlarge) running the ECS GPU-optimized AMI, or deploy --cpu"
    if capacity.capacity_providers:
        logger.warning("%s; capacity providers %s may start some", problem, ", ".join(capacity.capacity_providers))
        return capacity
    raise DeployError(problem, hint)


def latest_task_definition(ecs: Any, family: str) -> dict[str, Any] | None:
    """The latest ACTIVE revision of ``family``, or None when there is none."""
    with aws_errors(f"describing task definition {family}"):
        try:
            return ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        except ClientError as exc:
            if error_code(exc) in {"ClientException", "InvalidParameterException"}:
                return None
            raise


def register_task_definition(ecs: Any, taskdef: Mapping[str, Any]) -> dict[str, Any]:
    """Register ``taskdef`` (register_task_definition arguments); the registered revision."""
    with aws_errors(f"registering task definition {taskdef.get('family')}"):
        registered = ecs.register_task_definition(**taskdef)["taskDefinition"]
    logger.info("registered %s", registered["taskDefinitionArn"])
    return registered


def launch_options(cluster_info: Mapping[str, Any]) -> dict[str, Any]:
    """``launchType`` EC2, unless the cluster has a default capacity provider strategy (then ECS uses it)."""
    if cluster_info.get("defaultCapacityProviderStrategy"):
        return {}
    return {"launchType": "EC2"}


def _explain_failures(failures: list[dict[str, Any]]) -> str:
    reasons = []
    for failure in failures:
        reason = str(failure.get("reason", "unknown"))
        hint = next((h for key, h in _PLACEMENT_HINTS.items() if key in reason), None)
        reasons.append(f"{reason} ({hint})" if hint else reason)
    return "; ".join(sorted(set(reasons)))


def run_task(
    ecs: Any, cluster: str, taskdef_arn: str, launch: Mapping[str, Any] | None = None, started_by: str = "crowdcount"
) -> str:
    """Start one task of ``taskdef_arn``; its ARN. A task ECS cannot place is a :class:`DeployError`."""
    with aws_errors(f"running a task of {taskdef_arn} on {cluster}"):
        response = ecs.run_task(
            cluster=cluster, taskDefinition=taskdef_arn, count=1, startedBy=started_by, **dict(launch or {})
        )
    if response.get("failures") or not response.get("tasks"):
        reasons = _explain_failures(response.get("failures", [])) or "ECS placed no task"
        raise DeployError(f"ECS could not start a task of {taskdef_arn} on {cluster}: {reasons}")
    return str(response["tasks"][0]["taskArn"])


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended."""

    task_arn: str
    last_status: str
    exit_code: int | None
    stopped_reason: str | None
    stop_code: str | None
    container_reason: str | None


def wait_for_task(
    ecs: Any,
    cluster: str,
    task_arn: str,
    timeout: float = 3600,
    poll: float = 10,
    on_status: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TaskOutcome:
    """Poll ``describe_tasks`` until the task is STOPPED; its outcome. :class:`DeployError` after
    ``timeout`` seconds (the task keeps running: the message says how to stop it)."""
    deadline = clock() + timeout
    last = None
    while True:
        with aws_errors(f"describing task {task_arn}"):
            response = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])
        if not response.get("tasks"):
            reasons = _explain_failures(response.get("failures", []))
            raise DeployError(f"task {task_arn} is gone from cluster {cluster}", reasons or None)
        task = response["tasks"][0]
        status = task.get("lastStatus", "?")
        if status != last:
            logger.info("task %s: %s", task_arn, status)
            if on_status:
                on_status(status)
            last = status
        if status == "STOPPED":
            containers = task.get("containers") or [{}]
            worker = containers[0]
            return TaskOutcome(
                task_arn=task_arn,
                last_status=status,
                exit_code=worker.get("exitCode"),
                stopped_reason=task.get("stoppedReason"),
                stop_code=task.get("stopCode"),
                container_reason=worker.get("reason"),
            )
        if clock() >= deadline:
            raise DeployError(
                f"task {task_arn} is still {status} after {timeout:g} s; it keeps running",
                f"stop it with: aws ecs stop-task --cluster {cluster} --task {task_arn}",
            )
        sleep(poll)


def check_outcome(outcome: TaskOutcome) -> None:
    """Raise :class:`TaskFailedError` (exit status: the container's) unless the task exited with 0."""
    if outcome.exit_code == 0:
        return
    why = "; ".join(r for r in (outcome.stopped_reason, outcome.container_reason) if r) or "no reason given"
    if outcome.exit_code is None:
        raise TaskFailedError(f"task {outcome.task_arn} stopped without an exit code: {why}")
    raise TaskFailedError(f"task {outcome.task_arn} exited with code {outcome.exit_code}: {why}", outcome.exit_code)


#: Service deployments: stop old tasks before starting new ones, since each needs a whole GPU and a queue
#: worker can pause (messages wait in SQS); roll back automatically when new tasks keep failing.
DEPLOYMENT_CONFIGURATION: dict[str, Any] = {
    "maximumPercent": 100,
    "minimumHealthyPercent": 0,
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
}


def describe_service(ecs: Any, cluster: str, name: str) -> dict[str, Any] | None:
    """The ACTIVE service ``name`` on ``cluster``, or None."""
    with aws_errors(f"describing ECS service {name}"):
        services = ecs.describe_services(cluster=cluster, services=[name])["services"]
    active = [s for s in services if s.get("status") == "ACTIVE"]
    return active[0] if active else None


def deploy_service(
    ecs: Any,
    cluster: str,
    name: str,
    taskdef_arn: str,
    desired_count: int,
    launch: Mapping[str, Any] | None = None,
    force_new_deployment: bool = False,
) -> tuple[str, bool]:
    """Create service ``name`` (``desired_count`` tasks) or point the existing one at ``taskdef_arn``
    (leaving its desired count to autoscaling); ``(service arn, created)``."""
    existing = describe_service(ecs, cluster, name)
    if existing is None:
        with aws_errors(f"creating ECS service {name}"):
            service = ecs.create_service(
                cluster=cluster,
                serviceName=name,
                taskDefinition=taskdef_arn,
                desiredCount=desired_count,
                deploymentConfiguration=DEPLOYMENT_CONFIGURATION,
                propagateTags="SERVICE",
                tags=[{"key": "app", "value": "crowdcount"}],
                **dict(launch or {}),
            )["service"]
        return str(service["serviceArn"]), True
    with aws_errors(f"updating ECS service {name}"):
        service = ecs.update_service(
            cluster=cluster,
            service=name,
            taskDefinition=taskdef_arn,
            deploymentConfiguration=DEPLOYMENT_CONFIGURATION,
            forceNewDeployment=force_new_deployment,
        )["service"]
    return str(service["serviceArn"]), False


def container_insights_enabled(cluster_info: Mapping[str, Any]) -> bool:
    """Whether Container Insights (which publishes ``RunningTaskCount``) is on for the cluster."""
    return any(
        s.get("name") == "containerInsights" and s.get("value") in {"enabled", "enhanced"}
        for s in cluster_info.get("settings", [])
    )


def enable_container_insights(ecs: Any, cluster: str) -> None:
    """Turn on Container Insights for ``cluster`` (the autoscaling metric needs ``RunningTaskCount``)."""
    with aws_errors(f"enabling Container Insights on {cluster}"):
        ecs.update_cluster(cluster=cluster, settings=[{"name": "containerInsights", "value": "enabled"}])
