"""``crowdcount dashboard``: serve finished results (files, folders, S3, the job table) as a web page."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from crowdcount.cli.common import config_option, get_config, token_option
from crowdcount.config import Config
from crowdcount.errors import AWSError, ConfigError

logger = logging.getLogger(__name__)


@click.command()
@click.argument("results", nargs=-1)
@click.option(
    "--web",
    "bind",
    default="8080",
    show_default=True,
    metavar="[HOST:]PORT",
    help="Where to serve (default host 127.0.0.1; any other needs --token).",
)
@token_option
@click.option(
    "--jobs/--no-jobs",
    default=True,
    show_default=True,
    help="List the jobs of the configured DynamoDB table (dynamodb.table_id), when it can be reached.",
)
@config_option
def dashboard(results: tuple[str, ...], bind: str, token: str | None, jobs: bool, config_path: str | None) -> None:
    """Serve finished RESULTS as a dashboard: result files or folders (searched for result files),
    s3://BUCKET/PREFIX, and the job table of the configured DynamoDB table when it can be reached (the
    sandbox counts). Default: crowdcount_results/ when it exists. Per video: the count plot, line crossings,
    zones, people, CSV and JSON downloads. Runs until Ctrl-C.
    """
    from crowdcount.web.app import WebServer, check_token, create_app, parse_bind
    from crowdcount.web.results import ResultsCatalog, is_result, read_json

    host, port = parse_bind(bind)
    check_token(host, token)
    roots = list(results) or (["crowdcount_results"] if Path("crowdcount_results").is_dir() else [])
    for root in roots:
        if not root.startswith("s3://") and not Path(root).exists():
            raise ConfigError(f"{root!r} does not exist", "give result files, folders or s3://BUCKET/PREFIX")
        if Path(root).is_file() and not is_result(read_json(Path(root))):  # else it is left out, silently
            raise ConfigError(
                f"{root!r} is not a crowdcount result file",
                "give result JSONs written by analyze or the worker, folders of them, or s3://BUCKET/PREFIX",
            )
    config = get_config(config_path)
    s3 = dynamodb = None
    table = None
    if jobs or any(r.startswith("s3://") for r in roots):
        s3, dynamodb, table = _aws_clients(config, jobs)
    catalog = ResultsCatalog(
        roots, s3=s3, dynamodb=dynamodb, table=table, step=config["human_detection"]["result_step"]
    )
    rows = catalog.rows()
    if not roots and dynamodb is None:
        raise ConfigError(
            "nothing to show: no RESULTS given and no job table reachable", "give result files or folders"
        )
    if roots and len(catalog.failed_roots) == len(roots) and dynamodb is None:  # nothing at all could be read
        failed = "; ".join(catalog.errors)
        if any(r.startswith("s3://") for r in roots):
            raise AWSError(failed, "check the bucket, the endpoint and the credentials")
        raise ConfigError(failed, "check the folders' permissions")
    for error in catalog.errors:  # some could be read: served, and said once
        click.echo(f"warning: {error}", err=True)
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    listed = Gauge("crowdcount_web_results", "Finished videos the dashboard lists.", registry=registry)
    listed.set_function(lambda: len(catalog.entries()))
    server = WebServer(
        create_app(catalog=catalog, registry=registry, token=token, title="crowdcount results"), host, port
    )
    click.echo(
        f"{len(rows)} video(s); dashboard on {server.url}{'?token=…' if token else ''} (Ctrl-C stops)",
        err=True,
    )
    server.run()


def _aws_clients(config: Config, jobs: bool) -> tuple[Any, Any | None, str | None]:
    """S3 and (with ``jobs``) DynamoDB clients; the table only when it answers (a short timeout, one try)."""
    from botocore.config import Config as BotoConfig

    from crowdcount.aws.session import make_context

    context = make_context(config["aws_region"], config["aws_endpoint_url"])
    quick = BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10)
    s3 = context.client("s3", config=quick)
    if not jobs:
        return s3, None, None
    table = config["dynamodb"]["table_id"]
    dynamodb = context.client("dynamodb", region=config["dynamodb"]["region"], config=quick)
    try:
        dynamodb.describe_table(TableName=table)
    except Exception as exc:  # not reachable, no credentials, no table: the files still show
        click.echo(f"note: job table {table!r} not shown ({type(exc).__name__}); --no-jobs skips it", err=True)
        return s3, None, None
    return s3, dynamodb, table
