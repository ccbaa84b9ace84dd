"""``crowdcount edge``: a camera (or a file) uploading frames to S3 and reading the answers back."""

from __future__ import annotations

import json
import math
import os
import time

import click

from crowdcount.aws.edge import EdgeClient
from crowdcount.aws.errors import is_aws_exception, to_aws_error
from crowdcount.aws.resources import context_from_config
from crowdcount.cli.aws_common import endpoint_option
from crowdcount.cli.common import FloatRange, config_option, get_config
from crowdcount.errors import ConfigError
from crowdcount.live.capture import capture


def _seconds(text: str) -> float:
    try:
        value = float(text[:-1] if text.endswith("s") else text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # nan, inf: no interval a capture can keep
        raise ConfigError(f"--every {text!r} is not a duration", "e.g. --every 0.5s")
    if value <= 0:
        raise ConfigError(f"--every must be positive, got {text!r}")
    return value


@click.command()
@click.argument("source")
@click.option("--every", "every", default="0.5s", show_default=True, help="Capture interval, e.g. 0.5s.")
@click.option("--frames", "max_frames", type=click.IntRange(min=1), default=None, help="Stop after this many.")
@click.option("--results-queue", default=None, help="The answers' queue (default: the config's aws_queues.results).")
@click.option("--prefix", default="edge/", show_default=True, help="S3 key prefix of the uploads.")
@click.option(
    "--invoke/--no-invoke",
    default=True,
    show_default=True,
    help="Run the handler here on each upload's event (the sandbox); --no-invoke when S3 notifies a Lambda.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the last answers.",
)
@endpoint_option
@config_option
def edge(
    source: str,
    every: str,
    max_frames: int | None,
    results_queue: str | None,
    prefix: str,
    invoke: bool,
    timeout_s: float,
    endpoint_url: str | None,
    config_path: str | None,
) -> None:
    """Capture frames of SOURCE (a camera index or a video file), upload them to the config's bucket, read the
    answers from the results queue and report round-trip latency (p50/p95/max) and frames never answered."""
    interval = _seconds(every)
    config = get_config(config_path)
    ctx = context_from_config(config, endpoint_url)
    queue = results_queue or config.aws_queues.results
    sqs = ctx.client("sqs", config.aws_region)
    try:
        url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    except Exception as exc:
        if not is_aws_exception(exc):
            raise
        raise to_aws_error(exc, f"opening queue {queue!r}", ctx.endpoint_url) from None
    handle = None
    if invoke:
        from crowdcount.aws.events import handler_from_environment

        env = {**os.environ, "CROWDCOUNT_AWS_QUEUES__RESULTS": queue}
        if ctx.endpoint_url:
            env["AWS_ENDPOINT_URL"] = ctx.endpoint_url
        if config_path:
            env["CROWDCOUNT_CONFIG"] = config_path
        handle = handler_from_environment(env).handle
    client = EdgeClient(ctx.client("s3", config.aws_region), sqs, config.video_split.output_bucket, url, prefix, handle)
    client.start()
    next_at = time.monotonic()
    try:
        for frame in capture(source, interval, max_frames):
            time.sleep(max(0.0, next_at - time.monotonic()))  # a file is sent at the pace a camera would be
            next_at += interval
            client.send(frame)
    except BaseException:
        client.finish(0)  # stop receiving answers (and the handler's thread) before the error is reported
        raise
    report = client.finish(timeout_s).to_dict()
    click.echo(json.dumps(report, indent=2))
    if report["missing"]:
        raise SystemExit(1)
