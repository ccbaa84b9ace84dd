"""IAM: the worker's task role with a least-privilege policy generated from ``variables.json``, and the
task execution role (pulling the image from ECR and writing logs).

The task role may only

* read videos under ``video_split.input_prefix`` of ``video_split.output_bucket`` (and list that prefix, so
  a missing video is a 404, not a 403),
* write results under ``human_detection.result_prefix`` of the same bucket (PutObject only; see
  :func:`result_prefix_for` for the prefixes refused), and read back and delete its own checkpoints there
  (``<result_prefix>checkpoints/``),
* receive, delete and change the visibility of messages on ``aws_queues.human_detection`` (and look its URL
  up by name), and
* get and update items of ``dynamodb.table_id``.

Nothing else: no wildcard actions, no other queue (the dead-letter queue is fed by SQS itself), no table scans.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from crowdcount.aws.deploy.errors import aws_errors, error_code
from crowdcount.config import Config
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
EXECUTION_POLICY = "policy/service-role/AmazonECSTaskExecutionRolePolicy"
#: The name of the inline policy put on the task role.
TASK_POLICY_NAME = "crowdcount-worker"

SQS_WORKER_ACTIONS = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
DYNAMODB_WORKER_ACTIONS = ["dynamodb:GetItem", "dynamodb:UpdateItem"]


def partition_for(region: str) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _check_prefix(key: str, prefix: str) -> str:
    if any(ch in prefix for ch in "*?"):
        raise ConfigError(f"{key} {prefix!r} has a wildcard", "give a plain key prefix such as 'videos/'")
    if prefix.startswith("/"):
        raise ConfigError(f"{key} {prefix!r} starts with '/'", "S3 keys have no leading slash: 'videos/'")
    return prefix


def result_prefix_for(config: Config) -> str:
    """The prefix a deployed worker writes results under, the same for both deploy paths (the task role made
    here and the CloudFormation stack). :class:`ConfigError` for one that would grant too much or nothing:
    ``null`` (results beside the videos, under the input prefix, which the role may only read), ``""`` (the
    whole bucket, inputs included), a prefix without a final ``/`` (``results`` also covers ``results-x/``),
    or one that covers the input prefix."""
    value = config.get("human_detection.result_prefix")
    fix = "set human_detection.result_prefix to a folder of its own, e.g. 'results/'"
    if value is None:
        raise ConfigError(
            "human_detection.result_prefix is null: a deployed worker would write results under the input prefix, "
            "where it may only read",
            fix,
        )
    if value == "":
        raise ConfigError(
            "human_detection.result_prefix is empty: it would grant s3:PutObject on the whole bucket, inputs included",
            fix,
        )
    prefix = _check_prefix("human_detection.result_prefix", value)
    if not prefix.endswith("/"):
        raise ConfigError(f"human_detection.result_prefix {prefix!r} does not end with '/'", f"use '{prefix}/'")
    input_prefix = config.get("video_split.input_prefix") or ""
    if input_prefix.startswith(prefix):
        raise ConfigError(
            f"human_detection.result_prefix {prefix!r} covers the input prefix {input_prefix!r}: the worker could "
            "overwrite videos",
            fix,
        )
    return prefix


def task_role_policy(config: Config, account: str) -> dict[str, Any]:
    """The task role's policy document for ``config`` in ``account``."""
    region = config["aws_region"]
    partition = partition_for(region)
    bucket = config.get("video_split.output_bucket")
    input_prefix = _check_prefix("video_split.input_prefix", config.get("video_split.input_prefix"))
    queue = config.get("aws_queues.human_detection")
    table_region = config.get("dynamodb.region")
    table = config.get("dynamodb.table_id")
    cluster = config.get("deploy.cluster")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadInputVideos",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:{partition}:s3:::{bucket}/{input_prefix}*"],
        },
        {
            "Sid": "ListInputPrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:{partition}:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [f"{input_prefix}*"]}},
        },
    ]
    result_prefix = result_prefix_for(config)
    statements.append(
        {
            "Sid": "WriteResults",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [f"arn:{partition}:s3:::{bucket}/{result_prefix}*"],
        }
    )
    statements.append(  # resumable jobs read back and remove their checkpoints (crowdcount/aws/checkpoint.py)
        {
            "Sid": "ResumeFromCheckpoints",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject"],
            "Resource": [f"arn:{partition}:s3:::{bucket}/{result_prefix}checkpoints/*"],
        }
    )
    statements += [
        {
            "Sid": "ConsumeJobQueue",
            "Effect": "Allow",
            "Action": list(SQS_WORKER_ACTIONS),
            "Resource": [f"arn:{partition}:sqs:{region}:{account}:{queue}"],
        },
        {
            "Sid": "TrackVideos",
            "Effect": "Allow",
            "Action": list(DYNAMODB_WORKER_ACTIONS),
            "Resource": [f"arn:{partition}:dynamodb:{table_region}:{account}:table/{table}"],
        },
        {  # the worker protects its task from scale-in while a job runs (crowdcount/aws/protection.py)
            "Sid": "ScaleInProtection",
            "Effect": "Allow",
            "Action": ["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"],
            "Resource": [f"arn:{partition}:ecs:{region}:{account}:task/{cluster}/*"],
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def assume_role_policy(account: str, region: str, scoped: bool = True) -> dict[str, Any]:
    """Trust policy: ECS tasks may assume the role; ``scoped`` adds the confused-deputy conditions AWS
    recommends for task roles (only ECS acting for this account and region)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": ECS_TASKS_PRINCIPAL},
        "Action": "sts:AssumeRole",
    }
    if scoped:
        statement["Condition"] = {
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {"aws:SourceArn": f"arn:{partition_for(region)}:ecs:{region}:{account}:*"},
        }
    return {"Version": "2012-10-17", "Statement": [statement]}


@dataclass(frozen=True)
class RolePlan:
    """The roles a deployment uses: ARNs, and whether each is managed here (created/updated) or given."""

    task_role_arn: str
    execution_role_arn: str
    task_role_name: str | None
    execution_role_name: str | None


def role_arn(account: str, name: str, region: str) -> str:
    """The ARN of role ``name`` in ``account``."""
    return f"arn:{partition_for(region)}:iam::{account}:role/{name}"


def plan_roles(config: Config, account: str) -> RolePlan:
    """Configured role ARNs are used as they are; a null one means a role named after the family is managed."""
    deploy = config["deploy"]
    region = config["aws_region"]
    task_name = None if deploy["task_role_arn"] else f"{deploy['family']}-task"
    execution_name = None if deploy["execution_role_arn"] else f"{deploy['family']}-execution"
    return RolePlan(
        task_role_arn=deploy["task_role_arn"] or role_arn(account, str(task_name), region),
        execution_role_arn=deploy["execution_role_arn"] or role_arn(account, str(execution_name), region),
        task_role_name=task_name,
        execution_role_name=execution_name,
    )


def _ensure_role(iam: Any, name: str, trust: dict[str, Any], description: str) -> tuple[str, bool]:
    with aws_errors(f"looking up IAM role {name}"):
        try:
            arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            arn = None
    if arn is None:
        with aws_errors(f"creating IAM role {name}"):
            arn = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=description,
                Tags=[{"Key": "app", "Value": "crowdcount"}],
            )["Role"]["Arn"]
        return arn, True
    with aws_errors(f"updating the trust policy of IAM role {name}"):
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    return arn, False


def ensure_task_role(iam: Any, name: str, policy: dict[str, Any], account: str, region: str) -> tuple[str, bool]:
    """Create or update the task role ``name`` with ``policy`` inline; ``(arn, created)``."""
    arn, created = _ensure_role(iam, name, assume_role_policy(account, region), "crowdcount worker task role")
    with aws_errors(f"putting the policy of IAM role {name}"):
        iam.put_role_policy(RoleName=name, PolicyName=TASK_POLICY_NAME, PolicyDocument=json.dumps(policy))
    return arn, created


def ensure_execution_role(iam: Any, name: str, account: str, region: str) -> tuple[str, bool]:
    """Create or update the execution role ``name`` (AmazonECSTaskExecutionRolePolicy); ``(arn, created)``."""
    trust = assume_role_policy(account, region, scoped=False)
    arn, created = _ensure_role(iam, name, trust, "crowdcount worker execution role")
    with aws_errors(f"attaching the execution policy to IAM role {name}"):
        iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:{partition_for(region)}:iam::aws:{EXECUTION_POLICY}")
    return arn, created
