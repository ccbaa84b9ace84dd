"""The AWS resources named in ``variables.json`` (bucket, queue + DLQ, table), and creating them.

:func:`provision` creates whatever is missing (idempotent); the sandbox calls it against moto's server and
tests call it against moto's in-process mock. On AWS, infrastructure-as-code owns these resources.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from crowdcount.aws.errors import error_code, is_aws_exception, to_aws_error
from crowdcount.aws.session import AwsContext, make_context
from crowdcount.config import Config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """Names and regions of the worker's bucket, queues and table."""

    region: str
    bucket: str
    queue: str
    dlq: str
    max_receive_count: int
    table: str
    table_region: str
    visibility_timeout: int = 300

    @classmethod
    def from_config(cls, config: Config) -> Resources:
        return cls(
            region=config["aws_region"],
            bucket=config.get("video_split.output_bucket"),
            queue=config.get("aws_queues.human_detection"),
            dlq=config.get("aws_queues.human_detection_dlq"),
            max_receive_count=config.get("aws_queues.max_receive_count"),
            table=config.get("dynamodb.table_id"),
            table_region=config.get("dynamodb.region"),
            visibility_timeout=config.get("worker.visibility_timeout"),
        )


def endpoint_for(config: Config, endpoint_url: str | None = None) -> str | None:
    """The endpoint to talk to: ``endpoint_url`` (``--endpoint-url``), ``$AWS_ENDPOINT_URL``, the config's
    ``aws_endpoint_url``, else AWS (``None``)."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or config["aws_endpoint_url"] or None


def context_from_config(config: Config, endpoint_url: str | None = None) -> AwsContext:
    """An :class:`AwsContext` for the config's region and endpoint (see :func:`endpoint_for`)."""
    return make_context(config["aws_region"], endpoint_for(config, endpoint_url))


def provision(ctx: AwsContext, res: Resources) -> dict[str, Any]:
    """Create the bucket, the DLQ, the queue (redriving to the DLQ after ``max_receive_count`` receives) and the
    table (key ``VideoId``, a number) when missing. Returns their URLs/ARNs."""
    s3 = ctx.client("s3", res.region)
    sqs = ctx.client("sqs", res.region)
    dynamodb = ctx.client("dynamodb", res.table_region)
    try:
        try:
            s3.head_bucket(Bucket=res.bucket)
        except Exception as exc:
            if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            kwargs: dict[str, Any] = {}
            if res.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": res.region}
            s3.create_bucket(Bucket=res.bucket, **kwargs)
            logger.info("created bucket %s", res.bucket)
        dlq_url = sqs.create_queue(QueueName=res.dlq, Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(res.max_receive_count)})
        attributes = {"VisibilityTimeout": str(res.visibility_timeout), "RedrivePolicy": redrive}
        try:
            queue_url = sqs.get_queue_url(QueueName=res.queue)["QueueUrl"]
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes)
        except Exception as exc:
            if error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                raise
            queue_url = sqs.create_queue(QueueName=res.queue, Attributes=attributes)["QueueUrl"]
            logger.info("created queue %s (DLQ %s)", res.queue, res.dlq)
        try:
            table_arn = dynamodb.describe_table(TableName=res.table)["Table"]["TableArn"]
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            table_arn = dynamodb.create_table(
                TableName=res.table,
                KeySchema=[{"AttributeName": "VideoId", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "VideoId", "AttributeType": "N"}],
                BillingMode="PAY_PER_REQUEST",
            )["TableDescription"]["TableArn"]
            dynamodb.get_waiter("table_exists").wait(TableName=res.table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            logger.info("created table %s", res.table)
    except Exception as exc:
        if is_aws_exception(exc):
            raise to_aws_error(exc, "creating the sandbox resources", ctx.endpoint_url) from None
        raise
    return {
        "bucket": res.bucket,
        "queue_url": queue_url,
        "dlq_url": dlq_url,
        "table_arn": table_arn,
    }
