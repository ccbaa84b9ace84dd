"""The CloudFormation template: lint, agreement with the ECS template and the IAM generator, and deploying
it with moto's CloudFormation (which skips the Application Auto Scaling resources it cannot model)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from crowdcount.aws.deploy import cloudformation as cfn
from crowdcount.aws.deploy import iam, scaling, taskdef
from crowdcount.aws.deploy.deployer import Deployer, DeployOptions
from crowdcount.aws.deploy.errors import DeployError
from crowdcount.aws.session import AwsContext
from crowdcount.config import Config
from crowdcount.errors import ConfigError

from .helpers import ACCOUNT, REGION, REPO, TEST_CONFIG, by_digest, put_ecr_image

TEMPLATE_PATH = REPO / "taskdefs" / taskdef.CLOUDFORMATION_TEMPLATE
#: moto's CloudFormation skips (with a warning) the Application Auto Scaling resources it cannot model.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..ApplicationAutoScaling")

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/crowdcount-worker:latest"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn.load_template(TEMPLATE_PATH.read_text(), str(TEMPLATE_PATH))


def test_template_passes_cfn_lint() -> None:
    lint = pytest.importorskip("cfnlint.api", reason="cfn-lint is not installed")
    matches = lint.lint_file(Path(TEMPLATE_PATH))
    assert [str(m) for m in matches] == []


def test_template_declares_every_resource_the_issue_asks_for(template: dict[str, Any]) -> None:
    types = {name: r["Type"] for name, r in template["Resources"].items()}
    assert types == {
        "DeadLetterQueue": "AWS::SQS::Queue",
        "JobQueue": "AWS::SQS::Queue",
        "VideoTable": "AWS::DynamoDB::Table",
        "VideoBucket": "AWS::S3::Bucket",
        "VideoBucketPolicy": "AWS::S3::BucketPolicy",
        "LogGroup": "AWS::Logs::LogGroup",
        "TaskRole": "AWS::IAM::Role",
        "ExecutionRole": "AWS::IAM::Role",
        "TaskDefinition": "AWS::ECS::TaskDefinition",
        "Service": "AWS::ECS::Service",
        "ScalableTarget": "AWS::ApplicationAutoScaling::ScalableTarget",
        "BacklogScalingPolicy": "AWS::ApplicationAutoScaling::ScalingPolicy",
    }


def test_task_definition_matches_the_ecs_template(template: dict[str, Any], config: Config) -> None:
    """Both ways of deploying ask for the same GPU, placement, stop timeout, logs and environment."""
    rendered = taskdef.render_task_definition(config, IMAGE, "arn:task", "arn:exec")
    props = template["Resources"]["TaskDefinition"]["Properties"]
    container = props["ContainerDefinitions"][0]
    ecs_container = rendered["containerDefinitions"][0]
    assert props["RequiresCompatibilities"] == rendered["requiresCompatibilities"]
    assert props["NetworkMode"] == rendered["networkMode"]
    assert props["PlacementConstraints"]["Fn::If"][1] == [
        {"Type": "memberOf", "Expression": {"Fn::Sub": "attribute:ecs.instance-type =~ ${InstanceType}"}}
    ]
    assert container["ResourceRequirements"]["Fn::If"][1] == [{"Type": "GPU", "Value": {"Ref": "GpuCount"}}]
    assert container["Name"] == ecs_container["name"]
    assert container["StopTimeout"] == {"Ref": "StopTimeout"}
    health = {key[0].lower() + key[1:]: value for key, value in container["HealthCheck"].items()}
    assert health == ecs_container["healthCheck"]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert set(container["LogConfiguration"]["Options"]) == set(ecs_container["logConfiguration"]["options"])
    names = [e["Name"] if "Name" in e else e["Fn::If"][1]["Name"] for e in container["Environment"]]
    assert names == [e["name"] for e in ecs_container["environment"]]


def test_scaling_policy_matches_the_api_path(template: dict[str, Any]) -> None:
    config = template["Resources"]["BacklogScalingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    expected = scaling.target_tracking_configuration("q", "c", "s", 2)
    metrics = config["CustomizedMetricSpecification"]["Metrics"]
    assert [m["Id"] for m in metrics] == [m["Id"] for m in expected["CustomizedMetricSpecification"]["Metrics"]]
    expression = metrics[-1]["Expression"]["Fn::Sub"].replace("${BacklogPerTask}", "2")
    assert expression == scaling.backlog_expression(2)
    assert (config["ScaleOutCooldown"], config["ScaleInCooldown"]) == (
        scaling.SCALE_OUT_COOLDOWN,
        scaling.SCALE_IN_COOLDOWN,
    )


def test_parameters_from_config(config: Config, template: dict[str, Any]) -> None:
    params = cfn.stack_parameters(config, IMAGE, create_bucket=False)
    assert params == {
        "ClusterName": "crowdcount",
        "Image": IMAGE,
        "Family": "crowdcount-worker",
        "Cpu": "2048",
        "Memory": "4096",
        "GpuCount": "1",
        "InstanceType": "g4dn.*",
        "TaskRoleArn": "",
        "ExecutionRoleArn": "",
        "QueueName": "crowdcount-human-detection",
        "DeadLetterQueueName": "crowdcount-human-detection-dlq",
        "MaxReceiveCount": "3",
        "VisibilityTimeout": "300",
        "TableName": "crowdcount-videos",
        "BucketName": "crowdcount-videos",
        "CreateBucket": "false",
        "InputPrefix": "videos/",
        "ResultPrefix": "results/",
        "LogGroupName": "/ecs/crowdcount-worker",
        "ServiceName": "crowdcount-worker",
        "MinTasks": "0",
        "MaxTasks": "4",
        "BacklogPerTask": "2",
        "GracePeriod": "90",
        "StopTimeout": "120",
    }
    cfn.check_parameters(template, params)


def test_parameter_problems_are_config_errors(config: Config, template: dict[str, Any]) -> None:
    params = cfn.stack_parameters(config, IMAGE)
    with pytest.raises(ConfigError, match="template has no parameter Bogus"):
        cfn.check_parameters(template, {**params, "Bogus": "1"})
    with pytest.raises(ConfigError, match="no value for parameter Image"):
        cfn.check_parameters(template, {**params, "Image": ""})
    with pytest.raises(ConfigError, match=r"deploy\.environment has 1 variables"):
        cfn.stack_parameters(Config({"deploy": {"environment": {"A": "b"}}}), IMAGE)
    with pytest.raises(ConfigError, match=r"dynamodb\.region 'eu-west-1' differs from aws_region"):
        cfn.stack_parameters(Config({"dynamodb": {"region": "eu-west-1"}}), IMAGE)


def test_bad_template_text() -> None:
    with pytest.raises(ConfigError, match="not a CloudFormation template"):
        cfn.load_template("a: 1")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        cfn.load_template("a: [")


def moto_policy(document: Any) -> dict[str, Any]:
    """An inline policy made by moto's CloudFormation as real CloudFormation stores it: moto keeps it as
    Python text and leaves ``AWS::NoValue`` in lists as None."""
    if isinstance(document, str):
        document = ast.literal_eval(document)
    document["Statement"] = [s for s in document["Statement"] if s is not None]
    return document


def _deploy(ctx: AwsContext, config: Config, **options: Any) -> Any:
    put_ecr_image(ctx.client("ecr"), "crowdcount-worker", "latest")
    options = DeployOptions(method="cloudformation", image=IMAGE, poll=0, **options)
    return Deployer(ctx, config, options, sleep=lambda s: None).run()


def test_stack_creates_the_resources(ctx: AwsContext, gpu_cluster: str, config: Config) -> None:
    result = _deploy(ctx, config)
    assert result.stack.action == "created"
    assert result.stack.status == "CREATE_COMPLETE"
    assert result.done[-1] == "created stack crowdcount"
    assert "enabled Container Insights on cluster crowdcount (the scaling metric needs it)" in result.done

    sqs = ctx.client("sqs")
    queue_url = sqs.get_queue_url(QueueName="crowdcount-human-detection")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "300"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:crowdcount-human-detection-dlq",
        "maxReceiveCount": 3,
    }
    table = ctx.client("dynamodb").describe_table(TableName="crowdcount-videos")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "VideoId", "KeyType": "HASH"}]
    ctx.client("s3").head_bucket(Bucket="crowdcount-videos")
    groups = ctx.client("logs").describe_log_groups(logGroupNamePrefix="/ecs/crowdcount-worker")["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/ecs/crowdcount-worker"]

    registered = ctx.client("ecs").describe_task_definition(taskDefinition="crowdcount-worker")["taskDefinition"]
    container = registered["containerDefinitions"][0]
    assert container["image"] == by_digest(ctx.client("ecr"), IMAGE)  # deployed by digest
    assert container["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert container["stopTimeout"] == 120
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": "/ecs/crowdcount-worker",
            "awslogs-region": REGION,
            "awslogs-stream-prefix": "crowdcount-worker",
        },
    }
    assert {"name": "CROWDCOUNT_HUMAN_DETECTION__RESULT_PREFIX", "value": "results/"} in container["environment"]
    service = ctx.client("ecs").describe_services(cluster="crowdcount", services=["crowdcount-worker"])["services"][0]
    assert service["desiredCount"] == 0
    assert service["taskDefinition"] == registered["taskDefinitionArn"]
    assert result.service_arn == service["serviceArn"]

    # The generated task role policy is what the IAM generator produces for --method ecs.
    client = ctx.client("iam")
    role = result.stack.outputs["TaskRoleArn"].rsplit("/", 1)[-1]
    document = client.get_role_policy(RoleName=role, PolicyName=iam.TASK_POLICY_NAME)["PolicyDocument"]
    assert moto_policy(document) == iam.task_role_policy(config, ACCOUNT)


def test_a_customer_managed_kms_key_is_usable_by_the_task_role(
    ctx: AwsContext, gpu_cluster: str, config: Config
) -> None:
    """With KmsKeyArn the queues, the table and the bucket are encrypted with that key: the worker can only
    receive, read and write them when its role may use the key (through those services only)."""
    key = ctx.client("kms").create_key(Description="crowdcount")["KeyMetadata"]["Arn"]
    parameters = {**cfn.stack_parameters(config, IMAGE), "KmsKeyArn": key}
    outcome = cfn.deploy_stack(ctx.client("cloudformation"), "kms", TEMPLATE_PATH.read_text(), parameters, poll=0)
    assert outcome.status == "CREATE_COMPLETE"
    role = outcome.outputs["TaskRoleArn"].rsplit("/", 1)[-1]
    document = moto_policy(
        ctx.client("iam").get_role_policy(RoleName=role, PolicyName=iam.TASK_POLICY_NAME)["PolicyDocument"]
    )
    base = iam.task_role_policy(config, ACCOUNT)["Statement"]
    assert document["Statement"][: len(base)] == base
    assert document["Statement"][len(base) :] == [
        {
            "Sid": "UseKmsKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [key],
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": [
                        f"dynamodb.{REGION}.amazonaws.com",
                        f"s3.{REGION}.amazonaws.com",
                        f"sqs.{REGION}.amazonaws.com",
                    ]
                }
            },
        }
    ]


def test_an_update_keeps_the_parameters_deploy_does_not_set(ctx: AwsContext, gpu_cluster: str, config: Config) -> None:
    """KmsKeyArn, AccessLogBucket, FootageRetentionDays, TableKey are set outside deploy (aws cloudformation
    deploy, the console): a deploy that updates the stack keeps them rather than resetting them to defaults."""
    key = ctx.client("kms").create_key(Description="crowdcount")["KeyMetadata"]["Arn"]
    cfn_client = ctx.client("cloudformation")
    outside = {"KmsKeyArn": key, "FootageRetentionDays": "30"}
    parameters = {**cfn.stack_parameters(config, IMAGE), **outside}
    assert cfn.deploy_stack(cfn_client, "crowdcount", TEMPLATE_PATH.read_text(), parameters, poll=0).action == "created"

    result = _deploy(ctx, Config({**TEST_CONFIG, "deploy": {**TEST_CONFIG["deploy"], "max_tasks": 6}}))
    assert result.stack.action == "updated"
    stack = cfn_client.describe_stacks(StackName="crowdcount")["Stacks"][0]
    values = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert (values["KmsKeyArn"], values["FootageRetentionDays"], values["MaxTasks"]) == (key, "30", "6")


@pytest.mark.parametrize("prefix", [None, "", "videos/"])
def test_both_deploy_paths_refuse_a_result_prefix_that_grants_too_much_or_nothing(prefix: str | None) -> None:
    config = Config({**TEST_CONFIG, "human_detection": {"result_prefix": prefix}})
    with pytest.raises(ConfigError, match="result_prefix"):
        cfn.stack_parameters(config, IMAGE)
    with pytest.raises(ConfigError, match="result_prefix"):
        iam.task_role_policy(config, ACCOUNT)
    with pytest.raises(ConfigError, match="result_prefix"):
        taskdef.render_task_definition(config, IMAGE, "arn:aws:iam::1:role/t", "arn:aws:iam::1:role/e")


def test_template_defaults_match_the_shipped_config(template: dict[str, Any]) -> None:
    from crowdcount.config import load_config

    shipped = load_config(str(REPO / "variables.json"), environ={})
    params = template["Parameters"]
    assert params["ResultPrefix"]["Default"] == shipped.get("human_detection.result_prefix") == "results/"
    assert re.fullmatch(params["ResultPrefix"]["AllowedPattern"], "results/")
    assert not re.fullmatch(params["ResultPrefix"]["AllowedPattern"], "")
    assert params["GracePeriod"]["Default"] == shipped.get("worker.grace_period_seconds")
    assert params["StopTimeout"]["Default"] >= params["GracePeriod"]["Default"] + taskdef.STOP_MARGIN


def test_existing_bucket_is_not_created_again(ctx: AwsContext, gpu_cluster: str, config: Config) -> None:
    ctx.client("s3").create_bucket(Bucket="crowdcount-videos")
    result = _deploy(ctx, config)
    assert result.stack_parameters["CreateBucket"] == "false"
    resources = ctx.client("cloudformation").list_stack_resources(StackName="crowdcount")["StackResourceSummaries"]
    assert "VideoBucket" not in {r["LogicalResourceId"] for r in resources}
    # deployed again (the stack exists, without the bucket): still not the stack's to create
    again = _deploy(ctx, Config({**TEST_CONFIG, "deploy": {**TEST_CONFIG["deploy"], "max_tasks": 6}}))
    assert (again.stack.action, again.stack_parameters["CreateBucket"]) == ("updated", "false")


def test_second_deploy_updates_the_stack(ctx: AwsContext, gpu_cluster: str, config: Config) -> None:
    _deploy(ctx, config)
    dry = _deploy(ctx, config, dry_run=True)
    assert dry.parameter_changes == []
    bigger = Config({**TEST_CONFIG, "deploy": {**TEST_CONFIG["deploy"], "max_tasks": 8}})
    dry = _deploy(ctx, bigger, dry_run=True)
    assert dry.parameter_changes == ["~ MaxTasks: '4' -> '8'"]
    result = _deploy(ctx, bigger)
    assert result.stack.action in {"updated", "unchanged"}
    stack = ctx.client("cloudformation").describe_stacks(StackName="crowdcount")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["MaxTasks"] == "8"


def test_resources_outside_the_stack_are_reported_before_anything_changes(
    ctx: AwsContext, gpu_cluster: str, config: Config
) -> None:
    ctx.client("sqs").create_queue(QueueName="crowdcount-human-detection")
    with pytest.raises(DeployError, match="would create JobQueue, which already exist outside it"):
        _deploy(ctx, config)
    assert ctx.client("cloudformation").list_stacks()["StackSummaries"] == []


def test_task_mode_is_refused(ctx: AwsContext, config: Config) -> None:
    with pytest.raises(ConfigError, match="--method cloudformation deploys a service"):
        Deployer(ctx, config, DeployOptions(method="cloudformation", mode="task", image=IMAGE))


class StubCfn:
    """A CloudFormation client whose stack fails to create and rolls back."""

    def __init__(self, statuses: list[str], exists: bool = False) -> None:
        self.statuses = statuses
        self.exists = exists

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # boto3's argument name
        if not self.exists:
            from botocore.exceptions import ClientError

            self.exists = True
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": f"Stack with id {StackName} does not exist"}},
                "DescribeStacks",
            )
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"Stacks": [{"StackName": StackName, "StackStatus": status}]}

    def create_stack(self, **kwargs: Any) -> dict[str, Any]:
        return {"StackId": "id"}

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {
            "StackEvents": [
                {"LogicalResourceId": StackName, "ResourceStatus": "ROLLBACK_COMPLETE"},
                {
                    "LogicalResourceId": "Service",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": "Resource handler returned message: no container instance met all of its "
                    "requirements (RESOURCE:GPU)",
                },
            ]
        }


def test_failed_stack_reports_why_and_that_it_rolled_back() -> None:
    stub = StubCfn(["CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"])
    statuses: list[str] = []
    with pytest.raises(DeployError) as info:
        cfn.deploy_stack(stub, "crowdcount", "body", {}, poll=0, on_status=statuses.append, sleep=lambda s: None)
    assert str(info.value) == (
        "stack crowdcount ended ROLLBACK_COMPLETE (CloudFormation rolled the change back): Service: Resource handler "
        "returned message: no container instance met all of its requirements (RESOURCE:GPU)"
    )
    assert statuses == ["CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"]


def test_rolled_back_creation_must_be_deleted_first() -> None:
    with pytest.raises(DeployError, match="ROLLBACK_COMPLETE after a failed creation") as info:
        cfn.deploy_stack(StubCfn(["ROLLBACK_COMPLETE"], exists=True), "crowdcount", "body", {})
    assert "aws cloudformation delete-stack --stack-name crowdcount" in str(info.value.hint)


class StubCfnUpdate(StubCfn):
    """A stack whose update fails, with the failures of an earlier failed update further down its history."""

    def update_stack(self, **kwargs: Any) -> dict[str, Any]:
        return {"StackId": "id"}

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        def event(logical: str, status: str, reason: str | None = None) -> dict[str, Any]:
            return {
                "LogicalResourceId": logical,
                "ResourceStatus": status,
                **({"ResourceStatusReason": reason} if reason else {}),
            }

        return {  # newest first, as CloudFormation lists them
            "StackEvents": [
                event(StackName, "UPDATE_ROLLBACK_COMPLETE"),
                event("TaskDefinition", "UPDATE_FAILED", "Invalid 'memory' setting for container 'worker'"),
                event(StackName, "UPDATE_IN_PROGRESS", "User Initiated"),
                event(StackName, "UPDATE_ROLLBACK_COMPLETE"),
                event("Service", "UPDATE_FAILED", "an old failure, fixed since"),
                event(StackName, "UPDATE_IN_PROGRESS", "User Initiated"),
                event(StackName, "CREATE_COMPLETE"),
            ]
        }


def test_a_failed_update_reports_its_own_failures_not_an_earlier_updates() -> None:
    stub = StubCfnUpdate(["UPDATE_ROLLBACK_COMPLETE", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"], exists=True)
    with pytest.raises(DeployError) as info:
        cfn.deploy_stack(stub, "crowdcount", "Resources: {}", {}, poll=0, sleep=lambda s: None)
    assert str(info.value) == (
        "stack crowdcount ended UPDATE_ROLLBACK_COMPLETE (CloudFormation rolled the change back): "
        "TaskDefinition: Invalid 'memory' setting for container 'worker'"
    )
