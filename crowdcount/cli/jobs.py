"""``crowdcount submit``, ``status`` and ``results``: send a video to the worker and read back what it did."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crowdcount.aws.jobs import fetch_result, get_document, submit_video
from crowdcount.aws.resources import context_from_config
from crowdcount.aws.status import lease_left
from crowdcount.cli.aws_common import endpoint_option
from crowdcount.cli.common import config_option, get_config
from crowdcount.errors import ConfigError


@click.command()
@click.argument("video", type=click.Path(dir_okay=False))
@click.option("--video-id", type=click.IntRange(min=0), required=True, help="The video's VideoId (a number).")
@click.option("--key", default=None, help="S3 key (default: <input_prefix><VideoId>/video/<file name>).")
@click.option("--force", is_flag=True, help="Recompute even if this video was already done with the same input.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@endpoint_option
@config_option
def submit(
    video: str,
    video_id: int,
    key: str | None,
    force: bool,
    as_json: bool,
    endpoint_url: str | None,
    config_path: str | None,
) -> None:
    """Upload VIDEO, create its DynamoDB document and enqueue its analysis for `crowdcount worker`."""
    config = get_config(config_path)
    # not a video (a still image), over the worker's limits: said now, not by a failed job after the upload
    done = submit_video(context_from_config(config, endpoint_url), config, video, video_id, key, force)
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2))
    else:
        click.echo(f"VideoId {done.video_id}: s3://{done.bucket}/{done.key} queued on {done.queue} ({done.message_id})")


def _detail(entry: dict[str, Any]) -> str:
    rf = entry.get("result_file")
    if entry.get("state") == "done" and rf:
        # other systems' steps share the document: a result_file or summary of another shape is shown as it is
        summary = entry.get("summary")
        stats = summary.items() if isinstance(summary, dict) else []
        counts = ", ".join(f"{c} max {s.get('max_count')}" for c, s in stats if isinstance(s, dict))
        uri = f"s3://{rf.get('bucket')}/{rf.get('key')}" if isinstance(rf, dict) else str(rf)
        return uri + (f" ({counts})" if counts else "")
    return str(entry.get("reason") or "")


@click.command()
@click.argument("video_id", type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print the whole document as JSON.")
@endpoint_option
@config_option
def status(video_id: int, as_json: bool, endpoint_url: str | None, config_path: str | None) -> None:
    """Show the processing steps recorded in VIDEO_ID's DynamoDB document."""
    config = get_config(config_path)
    document = get_document(context_from_config(config, endpoint_url), config, video_id)
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
        return
    table = Table(title=f"VideoId {video_id}")
    for column in ("Step", "State", "Attempt", "Updated"):
        table.add_column(column)
    table.add_column("Result / reason", overflow="fold")  # an S3 URI folded, never cut short with "…"
    for entry in document.get("process_steps") or []:
        if not isinstance(entry, dict):
            continue
        state = escape(str(entry.get("state", "?")))
        colour = {"done": "green", "error": "red", "running": "yellow"}.get(state)
        if state == "running" and "lease_until" in entry and lease_left(entry) <= 0:
            state, colour = "running (lease expired)", "red"  # the worker died or stalled
        table.add_row(
            escape(str(entry.get("step", "?"))),
            f"[{colour}]{state}[/{colour}]" if colour else state,
            escape(str(entry.get("attempt", "-"))),
            escape(str(entry.get("updated_at", "-"))[:19].replace("T", " ")),
            escape(_detail(entry)),  # keys and reasons may hold Rich markup: clip[/x].mp4
        )
    if not table.rows:
        click.echo(f"VideoId {video_id}: no steps recorded yet")
        return
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200).print(table)  # piped: the URI on one line


@click.command()
@click.argument("video_id", type=click.IntRange(min=0))
@click.option(
    "-o",
    "--output",
    default=None,
    help="File or folder to write to (default: crowdcount_results/); - prints the result to stdout.",
)
@click.option("--step", default=None, help="Step whose result to fetch (default: human_detection.result_step).")
@endpoint_option
@config_option
def results(
    video_id: int, output: str | None, step: str | None, endpoint_url: str | None, config_path: str | None
) -> None:
    """Download the result file of VIDEO_ID (once its step is done)."""
    config = get_config(config_path)
    ctx = context_from_config(config, endpoint_url)
    if output == "-":
        with tempfile.TemporaryDirectory(prefix="crowdcount-results-") as folder:
            _, path = fetch_result(ctx, config, video_id, Path(folder) / "result.json", step)
            data = path.read_bytes()
        try:  # text gets its final newline; anything else (another step's clip or image) goes out unchanged
            if not data.decode("utf-8").endswith("\n"):
                data += b"\n"
        except UnicodeDecodeError:
            pass
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        entry, path = fetch_result(ctx, config, video_id, output, step)
    except OSError as exc:  # a read-only folder, a file where a folder should be (the partial download is gone)
        where = output or "crowdcount_results/"
        raise ConfigError(
            f"--output {where!r} cannot be written: {exc.strerror or exc}", "give a file or folder you can write to"
        ) from None
    rf = entry["result_file"]
    click.echo(f"s3://{rf['bucket']}/{rf['key']} -> {path}")
