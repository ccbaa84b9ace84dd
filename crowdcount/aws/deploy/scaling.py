"""Service autoscaling on the SQS backlog per task (Application Auto Scaling, target tracking).

The signal is computed by CloudWatch metric math inside the policy, so nobody has to publish a custom
metric (AWS's documented "backlog per task" pattern):

* ``visible``: ``AWS/SQS ApproximateNumberOfMessagesVisible`` of the job queue (waiting jobs),
* ``inflight``: ``AWS/SQS ApproximateNumberOfMessagesNotVisible`` (jobs being processed; counted so that a
  service whose every job is in progress is not scaled in under its workers' feet),
* ``tasks``: ``ECS/ContainerInsights RunningTaskCount`` of the service (needs Container Insights on the
  cluster; deploy turns it on), missing data read as 0,
* ``backlog_per_task = IF(tasks > 0, (visible + inflight) / tasks, (visible + inflight) * 2 * target)``.

The second branch matters with ``min_tasks`` 0: with no task running, any job makes the value exceed the
target, and target tracking starts the first task (ECS scales out from zero by the minimum amount, then
tracks the real running count). A plain ``visible / tasks`` has no value at zero tasks and never starts one.

The target must be above 0 (``deploy.backlog_per_task`` >= 1; the template's ``BacklogPerTask`` has
``MinValue: 1``): at 0 the zero-task branch is ``backlog * 2 * 0 = 0``, never above the target, so no task would
ever start, and a negative target is refused by Application Auto Scaling only once the service exists.
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import Any

from crowdcount.aws.deploy.errors import aws_errors
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

SCALABLE_DIMENSION = "ecs:service:DesiredCount"
SCALE_OUT_COOLDOWN = 60
#: Long enough that a worker finishing a video is not scaled in while the next message is still invisible.
SCALE_IN_COOLDOWN = 300


def resource_id(cluster: str, service: str) -> str:
    """Application Auto Scaling's id of an ECS service."""
    return f"service/{cluster}/{service}"


def policy_name(service: str) -> str:
    """The name of the backlog-per-task policy of ``service``."""
    return f"{service}-sqs-backlog-per-task"


def check_target(backlog_per_task: float) -> float:
    """``backlog_per_task`` as a float; :class:`ConfigError` unless it is a finite number above 0."""
    ok = isinstance(backlog_per_task, int | float) and not isinstance(backlog_per_task, bool)
    if not (ok and math.isfinite(backlog_per_task) and backlog_per_task > 0):
        raise ConfigError(
            f"the backlog per task must be a number above 0, got {backlog_per_task!r}",
            "set deploy.backlog_per_task to 1 or more queued jobs per task",
        )
    return float(backlog_per_task)


def _number(value: float) -> str:
    """``value`` as metric math reads it: exact, plain digits (no exponent), no trailing ``.0``."""
    text = format(Decimal(repr(float(value))), "f")
    return text[:-2] if text.endswith(".0") else text


def backlog_expression(target: float) -> str:
    """The metric math expression of the backlog per task (see the module docstring)."""
    n = _number(check_target(target))
    return f"IF(FILL(tasks, 0) > 0, (visible + inflight) / FILL(tasks, 0), (visible + inflight) * 2 * {n})"


def target_tracking_configuration(queue: str, cluster: str, service: str, backlog_per_task: float) -> dict[str, Any]:
    """The ``TargetTrackingScalingPolicyConfiguration`` keeping ``backlog_per_task`` jobs per running task
    (:class:`ConfigError` unless a number above 0)."""
    target = check_target(backlog_per_task)

    def sqs(metric_id: str, name: str) -> dict[str, Any]:
        return {
            "Id": metric_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": name,
                    "Dimensions": [{"Name": "QueueName", "Value": queue}],
                },
                "Stat": "Average",
            },
            "ReturnData": False,
        }

    return {
        "TargetValue": target,
        "CustomizedMetricSpecification": {
            "Metrics": [
                sqs("visible", "ApproximateNumberOfMessagesVisible"),
                sqs("inflight", "ApproximateNumberOfMessagesNotVisible"),
                {
                    "Id": "tasks",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "ECS/ContainerInsights",
                            "MetricName": "RunningTaskCount",
                            "Dimensions": [
                                {"Name": "ClusterName", "Value": cluster},
                                {"Name": "ServiceName", "Value": service},
                            ],
                        },
                        "Stat": "Average",
                    },
                    "ReturnData": False,
                },
                {
                    "Id": "backlog_per_task",
                    "Label": "SQS backlog per running task",
                    "Expression": backlog_expression(target),
                    "ReturnData": True,
                },
            ]
        },
        "ScaleOutCooldown": SCALE_OUT_COOLDOWN,
        "ScaleInCooldown": SCALE_IN_COOLDOWN,
        "DisableScaleIn": False,
    }


def configure_autoscaling(
    autoscaling: Any,
    cluster: str,
    service: str,
    queue: str,
    min_tasks: int,
    max_tasks: int,
    backlog_per_task: float,
) -> dict[str, Any]:
    """Register the service as a scalable target (``min_tasks``..``max_tasks``) and put the target
    tracking policy; both calls are idempotent. A summary of what was set."""
    rid = resource_id(cluster, service)
    with aws_errors(f"registering {rid} with Application Auto Scaling"):
        autoscaling.register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=min_tasks,
            MaxCapacity=max_tasks,
        )
    configuration = target_tracking_configuration(queue, cluster, service, backlog_per_task)
    with aws_errors(f"putting the scaling policy of {rid}"):
        policy = autoscaling.put_scaling_policy(
            PolicyName=policy_name(service),
            ServiceNamespace="ecs",
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=configuration,
        )
    return {
        "resource_id": rid,
        "min_tasks": min_tasks,
        "max_tasks": max_tasks,
        "backlog_per_task": backlog_per_task,
        "policy_arn": policy.get("PolicyARN"),
    }
