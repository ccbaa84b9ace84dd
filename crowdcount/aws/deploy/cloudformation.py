"""CloudFormation: the stack of ``taskdefs/cloudformation.yaml`` (queue with DLQ, table, bucket, roles,
log group, GPU task definition, service, autoscaling), its parameters from ``variables.json``, and
creating or updating it while reporting why it failed (CloudFormation rolls a failed change back itself).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from crowdcount.aws.deploy.errors import DeployError, aws_errors, error_code
from crowdcount.aws.deploy.iam import result_prefix_for
from crowdcount.aws.deploy.taskdef import stop_timeout_for
from crowdcount.config import Config
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

CAPABILITIES = ["CAPABILITY_IAM"]
_DONE_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
_DONE_ROLLED_BACK = {"ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}


def load_template(text: str, source: str = "template") -> dict[str, Any]:
    """Parse a CloudFormation YAML (or JSON) template, short-form tags (``!Ref``, ``!Sub``...) included."""
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            "reading a CloudFormation template needs PyYAML", "pip install 'crowdcount[deploy]'"
        ) from None

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", construct)
    try:
        data = yaml.load(text, Loader=Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or "Resources" not in data:
        raise ConfigError(f"{source} is not a CloudFormation template (no Resources)")
    return data


def stack_parameters(config: Config, image: str, create_bucket: bool = True) -> dict[str, str]:
    """The stack's parameter values from ``config`` (all as text, as CloudFormation takes them)."""
    deploy = config["deploy"]
    if config.get("dynamodb.region") != config["aws_region"]:
        raise ConfigError(
            f"dynamodb.region {config.get('dynamodb.region')!r} differs from aws_region {config['aws_region']!r}",
            "a stack creates its table in its own region: make them equal, or use --method ecs",
        )
    if deploy["environment"]:
        raise ConfigError(
            f"deploy.environment has {len(deploy['environment'])} variables, which the CloudFormation template "
            "cannot take as parameters",
            "add them to the template's Environment list, or use --method ecs",
        )
    return {
        "ClusterName": deploy["cluster"],
        "Image": image,
        "Family": deploy["family"],
        "Cpu": deploy["cpu"],
        "Memory": deploy["memory"],
        "GpuCount": str(deploy["gpu_count"]),
        "InstanceType": deploy["instance_type"],
        "TaskRoleArn": deploy["task_role_arn"] or "",
        "ExecutionRoleArn": deploy["execution_role_arn"] or "",
        "QueueName": config.get("aws_queues.human_detection"),
        "DeadLetterQueueName": config.get("aws_queues.human_detection_dlq"),
        "MaxReceiveCount": str(config.get("aws_queues.max_receive_count")),
        "VisibilityTimeout": str(config.get("worker.visibility_timeout")),
        "TableName": config.get("dynamodb.table_id"),
        "BucketName": config.get("video_split.output_bucket"),
        "CreateBucket": "true" if create_bucket else "false",
        "InputPrefix": config.get("video_split.input_prefix"),
        "ResultPrefix": result_prefix_for(config),
        "LogGroupName": deploy["log_group"],
        "ServiceName": deploy["service_name"],
        "MinTasks": str(deploy["min_tasks"]),
        "MaxTasks": str(deploy["max_tasks"]),
        "BacklogPerTask": str(deploy["backlog_per_task"]),
        "GracePeriod": str(config.get("worker.grace_period_seconds")),
        "StopTimeout": str(stop_timeout_for(config)),
    }


def check_parameters(template: Mapping[str, Any], parameters: Mapping[str, str], source: str = "template") -> None:
    """:class:`ConfigError` for a parameter the template lacks, or one it needs (no Default) that is not given."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ConfigError(f"{source} has no parameter {unknown[0]}", f"it declares: {', '.join(declared)}")
    for name, spec in declared.items():
        if "Default" not in (spec or {}) and parameters.get(name) in (None, ""):
            raise ConfigError(f"{source}: no value for parameter {name}", "it has no Default; set it in variables.json")


@dataclass
class StackOutcome:
    """What deploying the stack did: ``created``, ``updated`` or ``unchanged``; its status and outputs."""

    stack_name: str
    action: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)


def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack ``name``, or None when it does not exist."""
    with aws_errors(f"describing stack {name}"):
        try:
            return cfn.describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                return None
            raise


def stack_owns_resource(cfn: Any, name: str, logical_id: str) -> bool:
    """Whether stack ``name`` has (created) resource ``logical_id``."""
    with aws_errors(f"listing the resources of stack {name}"):
        try:  # listed rather than described: moto's describe_stack_resource fails (500) on one the stack lacks
            pages = cfn.get_paginator("list_stack_resources").paginate(StackName=name)
            return any(r.get("LogicalResourceId") == logical_id for p in pages for r in p["StackResourceSummaries"])
        except ClientError as exc:
            if error_code(exc) == "ValidationError":
                return False
            raise


def parameter_diff(stack: Mapping[str, Any] | None, parameters: Mapping[str, str]) -> list[str]:
    """Lines ``Name: old -> new`` for the parameters that would change (all of them for a new stack)."""
    current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters", [])}
    lines = []
    for key in sorted(parameters):
        old = current.get(key)
        if stack is None:
            lines.append(f"+ {key}: {parameters[key]}")
        elif old != parameters[key]:
            lines.append(f"~ {key}: {old!r} -> {parameters[key]!r}")
    return lines


def _failure_reasons(cfn: Any, name: str, limit: int = 5) -> str:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return ""
    reasons = []
    for e in events:  # newest first, back to the start of this create or update (older failures are not its own)
        if e.get("LogicalResourceId") == name and e.get("ResourceStatus") in {
            "CREATE_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
        }:
            break
        if str(e.get("ResourceStatus", "")).endswith("FAILED"):
            reasons.append(f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}")
    return "; ".join(reversed(reasons[:limit]))


def deploy_stack(
    cfn: Any,
    name: str,
    template_body: str,
    parameters: Mapping[str, str],
    timeout: float = 3600,
    poll: float = 10,
    on_status: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StackOutcome:
    """Create stack ``name`` or update it, wait until it settles and return the outcome. A failure is a
    :class:`DeployError` with CloudFormation's reasons and whether it rolled back."""
    params: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    stack = describe_stack(cfn, name)
    if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {name} is ROLLBACK_COMPLETE after a failed creation and cannot be updated",
            f"delete it (aws cloudformation delete-stack --stack-name {name}) and deploy again",
        )
    if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is busy ({stack['StackStatus']})", "wait for it to finish and deploy again")
    if stack is None:
        action = "created"
        with aws_errors(f"creating stack {name}"):
            cfn.create_stack(
                StackName=name,
                TemplateBody=template_body,
                Parameters=params,
                Capabilities=CAPABILITIES,
                Tags=[{"Key": "app", "Value": "crowdcount"}],
            )
    else:
        action = "updated"
        # parameters set outside deploy (KmsKeyArn, AccessLogBucket...) keep their values: left out, an update
        # would reset them to the template's defaults
        declared = load_template(template_body).get("Parameters") or {}
        params += [
            {"ParameterKey": key, "UsePreviousValue": True}
            for key, value in ((p["ParameterKey"], p.get("ParameterValue")) for p in stack.get("Parameters", []))
            if key not in parameters and key in declared and value != str((declared[key] or {}).get("Default"))
        ]
        with aws_errors(f"updating stack {name}"):
            try:
                cfn.update_stack(
                    StackName=name, TemplateBody=template_body, Parameters=params, Capabilities=CAPABILITIES
                )
            except ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise
                return StackOutcome(name, "unchanged", stack["StackStatus"], _outputs(stack))
    deadline = clock() + timeout
    last = None
    while True:
        stack = describe_stack(cfn, name)
        if stack is None:
            raise DeployError(f"stack {name} disappeared while being {action}")
        status = stack["StackStatus"]
        if status != last and on_status:
            on_status(status)
        last = status
        if status in _DONE_OK:
            return StackOutcome(name, action, status, _outputs(stack))
        if not status.endswith("_IN_PROGRESS"):
            reasons = _failure_reasons(cfn, name) or stack.get("StackStatusReason") or "no reason given"
            rolled = " (CloudFormation rolled the change back)" if status in _DONE_ROLLED_BACK else ""
            raise DeployError(f"stack {name} ended {status}{rolled}: {reasons}")
        if clock() >= deadline:
            raise DeployError(f"stack {name} is still {status} after {timeout:g} s", "watch it in the console")
        sleep(poll)


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
