"""``crowdcount sandbox``: a local AWS (moto's server) with the resources of variables.json."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from crowdcount.aws.sandbox import DEFAULT_HOST, DEFAULT_PORT, start_sandbox
from crowdcount.cli.common import config_option, get_config


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="Port; 0 picks a free one."
)
@config_option
def sandbox(host: str, port: int, config_path: str | None) -> None:
    """Start a local AWS endpoint (moto) and create the bucket, queue with its DLQ, and table named in
    variables.json. Runs until Ctrl-C or SIGTERM; its data lives in memory only."""
    config = get_config(config_path)
    box = start_sandbox(config, host, port, aws_managed_policies=True)  # `crowdcount deploy` attaches one
    res = box.resources
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    click.echo(f"AWS sandbox (moto) listening on {box.endpoint}")
    click.echo(f"  bucket  s3://{res.bucket}")
    click.echo(f"  queue   {res.queue} -> DLQ {res.dlq} after {res.max_receive_count} receives")
    click.echo(f"  table   {res.table} (key VideoId, region {res.table_region})")
    click.echo("Use it from other shells with:")
    click.echo(f"  export AWS_ENDPOINT_URL={box.endpoint}")
    click.echo("Stop with Ctrl-C.")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        box.stop()
    click.echo("sandbox stopped")
