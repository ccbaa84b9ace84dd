"""``crowdcount worker``: serve the human-detection queue (what the GPU ECS task runs)."""

from __future__ import annotations

import logging

import click

from crowdcount.aws.worker import Worker
from crowdcount.cli.aws_common import endpoint_option
from crowdcount.cli.common import FloatRange, config_option, get_config, metrics_host_option


@click.command()
@endpoint_option
@click.option("--queue", default=None, help="Queue to serve (default: aws_queues.human_detection).")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Stop after handling N messages.")
@click.option("--idle-timeout", type=FloatRange(min=0), default=None, help="Stop after S seconds without messages.")
@click.option("--wait-time", type=click.IntRange(0, 20), default=None, help="Long-poll wait, seconds (max 20).")
@click.option("--visibility-timeout", type=click.IntRange(min=1), default=None, help="Message lease, seconds.")
@click.option("--heartbeat", type=click.IntRange(min=1), default=None, help="Lease extension interval, seconds.")
@click.option(
    "--grace-period", type=click.IntRange(min=0), default=None, help="Seconds a job gets to finish after SIGTERM."
)
@click.option(
    "--metrics-port", type=click.IntRange(0, 65535), default=None, help="Serve Prometheus job metrics on this port."
)
@metrics_host_option
@config_option
def worker(
    endpoint_url: str | None,
    queue: str | None,
    max_jobs: int | None,
    idle_timeout: float | None,
    wait_time: int | None,
    visibility_timeout: int | None,
    heartbeat: int | None,
    grace_period: int | None,
    metrics_port: int | None,
    metrics_host: str,
    config_path: str | None,
) -> None:
    """Serve the human-detection queue: fetch each video from S3, analyse it, upload the result file and
    record the step in the video's DynamoDB document (see docs/worker.md).

    Runs until SIGTERM/SIGINT, a {"command": "stop"} message, --max-jobs or --idle-timeout (exit 0).
    Exits 3 when the queue, bucket or table cannot be reached.
    """
    config = get_config(
        config_path,
        {
            "aws_queues": {"human_detection": queue},
            "worker": {
                "max_jobs": max_jobs,
                "idle_timeout_seconds": idle_timeout,
                "wait_time_seconds": wait_time,
                "visibility_timeout": visibility_timeout,
                "heartbeat_seconds": heartbeat,
                "grace_period_seconds": grace_period,
            },
        },
    )
    ctx = click.get_current_context()
    if ctx.parent is not None and ctx.parent.get_parameter_source("log_level") == click.core.ParameterSource.DEFAULT:
        # A worker's job log is its output: show it unless a level was chosen.
        logging.getLogger("crowdcount.aws").setLevel(logging.INFO)
    served = Worker.from_config(config, endpoint_url=endpoint_url)
    server = None
    if metrics_port is not None:
        from crowdcount.aws.metrics import WorkerMetrics
        from crowdcount.metrics import serve_metrics

        served.metrics = WorkerMetrics()
        server = serve_metrics(served.metrics.registry, metrics_port, metrics_host)
    try:
        stats = served.run(handle_signals=True)
    finally:
        if server is not None:
            server.close()
    click.echo(
        f"worker stopped ({stats.stop_reason}): {stats.done} done, {stats.skipped} already done, "
        f"{stats.failed} failed, {stats.malformed} malformed, {stats.released} released"
    )
