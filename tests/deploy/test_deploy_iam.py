"""The task role's least-privilege policy and the role management against moto's IAM."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from crowdcount.aws.deploy import iam
from crowdcount.aws.session import AwsContext
from crowdcount.config import Config
from crowdcount.errors import ConfigError

from .helpers import ACCOUNT, REGION, REPO, TEST_CONFIG

EXPECTED_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadInputVideos",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::crowdcount-videos/videos/*"],
        },
        {
            "Sid": "ListInputPrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::crowdcount-videos"],
            "Condition": {"StringLike": {"s3:prefix": ["videos/*"]}},
        },
        {
            "Sid": "WriteResults",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": ["arn:aws:s3:::crowdcount-videos/results/*"],
        },
        {
            "Sid": "ResumeFromCheckpoints",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject"],
            "Resource": ["arn:aws:s3:::crowdcount-videos/results/checkpoints/*"],
        },
        {
            "Sid": "ConsumeJobQueue",
            "Effect": "Allow",
            "Action": ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            "Resource": ["arn:aws:sqs:us-east-1:123456789012:crowdcount-human-detection"],
        },
        {
            "Sid": "TrackVideos",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": ["arn:aws:dynamodb:us-east-1:123456789012:table/crowdcount-videos"],
        },
        {
            "Sid": "ScaleInProtection",
            "Effect": "Allow",
            "Action": ["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"],
            "Resource": ["arn:aws:ecs:us-east-1:123456789012:task/crowdcount/*"],
        },
    ],
}


def test_task_role_policy_is_least_privilege(config: Config) -> None:
    assert iam.task_role_policy(config, ACCOUNT) == EXPECTED_POLICY


def test_policy_follows_the_configuration() -> None:
    config = Config(
        {
            "aws_region": "eu-west-1",
            "aws_queues": {"human_detection": "jobs"},
            "dynamodb": {"region": "eu-central-1", "table_id": "videos"},
            "video_split": {"output_bucket": "my-bucket", "input_prefix": "in/"},
            "human_detection": {"result_prefix": "out/"},
            "deploy": {"cluster": "gpu"},
        }
    )
    resources = {s["Sid"]: s["Resource"] for s in iam.task_role_policy(config, "111122223333")["Statement"]}
    assert resources == {
        "ReadInputVideos": ["arn:aws:s3:::my-bucket/in/*"],
        "ListInputPrefix": ["arn:aws:s3:::my-bucket"],
        "WriteResults": ["arn:aws:s3:::my-bucket/out/*"],
        "ResumeFromCheckpoints": ["arn:aws:s3:::my-bucket/out/checkpoints/*"],
        "ConsumeJobQueue": ["arn:aws:sqs:eu-west-1:111122223333:jobs"],
        "TrackVideos": ["arn:aws:dynamodb:eu-central-1:111122223333:table/videos"],
        "ScaleInProtection": ["arn:aws:ecs:eu-west-1:111122223333:task/gpu/*"],
    }


def test_no_wildcard_actions_and_no_dead_letter_queue(config: Config) -> None:
    policy = iam.task_role_policy(config, ACCOUNT)
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert all("*" not in a for a in actions)
    assert "dlq" not in json.dumps(policy)
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (None, "result_prefix is null: a deployed worker would write results under the input prefix"),
        ("", "result_prefix is empty: it would grant s3:PutObject on the whole bucket, inputs included"),
        ("results", "does not end with '/'"),
        ("vid", "does not end with '/'"),
        ("videos/", "covers the input prefix 'videos/'"),
    ],
)
def test_result_prefixes_that_grant_too_much_or_nothing_are_refused(prefix: str | None, message: str) -> None:
    config = Config({"human_detection": {"result_prefix": prefix}})
    with pytest.raises(ConfigError, match=message):
        iam.task_role_policy(config, ACCOUNT)


def test_shipped_config_grants_exactly_the_put_object_the_worker_needs() -> None:
    from crowdcount.aws.storage import result_key
    from crowdcount.config import load_config

    config = load_config(str(REPO / "variables.json"), environ={})
    policy = iam.task_role_policy(config, ACCOUNT)
    writes = [s for s in policy["Statement"] if any(a in ("s3:PutObject", "s3:*") for a in s["Action"])]
    assert writes == [
        {
            "Sid": "WriteResults",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": ["arn:aws:s3:::crowdcount-videos/results/*"],
        }
    ]
    # the worker's result key lies under the grant; the videos do not
    key = result_key("videos/42/video/clip.mp4", "human_detector", 42, config.get("human_detection.result_prefix"))
    assert fnmatch.fnmatchcase(f"arn:aws:s3:::crowdcount-videos/{key}", writes[0]["Resource"][0])
    assert not fnmatch.fnmatchcase("arn:aws:s3:::crowdcount-videos/videos/42/video/x.mp4", writes[0]["Resource"][0])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"video_split": {"input_prefix": "videos/*"}}, "video_split.input_prefix 'videos/\\*' has a wildcard"),
        ({"human_detection": {"result_prefix": "/results/"}}, "starts with '/'"),
    ],
)
def test_bad_prefixes(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        iam.task_role_policy(Config(override), ACCOUNT)


def test_partitions() -> None:
    assert iam.partition_for("cn-north-1") == "aws-cn"
    assert iam.partition_for("us-gov-west-1") == "aws-us-gov"
    assert iam.role_arn("1", "r", "cn-north-1") == "arn:aws-cn:iam::1:role/r"
    policy = iam.task_role_policy(Config({"aws_region": "cn-north-1"}), "1")
    assert policy["Statement"][0]["Resource"] == ["arn:aws-cn:s3:::crowdcount-videos/videos/*"]


def test_plan_roles_manages_only_missing_ones() -> None:
    plan = iam.plan_roles(Config({}), ACCOUNT)
    assert plan == iam.RolePlan(
        task_role_arn="arn:aws:iam::123456789012:role/crowdcount-worker-task",
        execution_role_arn="arn:aws:iam::123456789012:role/crowdcount-worker-execution",
        task_role_name="crowdcount-worker-task",
        execution_role_name="crowdcount-worker-execution",
    )
    given = Config({"deploy": {"task_role_arn": "arn:aws:iam::1:role/mine"}})
    plan = iam.plan_roles(given, ACCOUNT)
    assert plan.task_role_arn == "arn:aws:iam::1:role/mine"
    assert plan.task_role_name is None
    assert plan.execution_role_name == "crowdcount-worker-execution"


def test_roles_are_created_then_updated(ctx: AwsContext, config: Config) -> None:
    client = ctx.client("iam")
    policy = iam.task_role_policy(config, ACCOUNT)
    arn, created = iam.ensure_task_role(client, "crowdcount-worker-task", policy, ACCOUNT, REGION)
    assert (arn, created) == ("arn:aws:iam::123456789012:role/crowdcount-worker-task", True)
    role = client.get_role(RoleName="crowdcount-worker-task")["Role"]
    assert role["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:*"},
                },
            }
        ],
    }
    stored = client.get_role_policy(RoleName="crowdcount-worker-task", PolicyName=iam.TASK_POLICY_NAME)
    assert stored["PolicyDocument"] == policy

    narrower = Config({**TEST_CONFIG, "human_detection": {"result_prefix": "narrow/results/"}})
    new_policy = iam.task_role_policy(narrower, ACCOUNT)
    assert iam.ensure_task_role(client, "crowdcount-worker-task", new_policy, ACCOUNT, REGION) == (arn, False)
    stored = client.get_role_policy(RoleName="crowdcount-worker-task", PolicyName=iam.TASK_POLICY_NAME)
    assert stored["PolicyDocument"] == new_policy
    assert client.list_role_policies(RoleName="crowdcount-worker-task")["PolicyNames"] == [iam.TASK_POLICY_NAME]

    arn, created = iam.ensure_execution_role(client, "crowdcount-worker-execution", ACCOUNT, REGION)
    assert created
    attached = client.list_attached_role_policies(RoleName="crowdcount-worker-execution")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    ]
    assert iam.ensure_execution_role(client, "crowdcount-worker-execution", ACCOUNT, REGION) == (arn, False)
