"""The ``crowdcount`` entry point: the command group, logging set-up and the error-to-exit-code map."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from typing import Any

import click

from crowdcount import __version__
from crowdcount.errors import CrowdcountError

#: Subcommands, imported only when used: name -> ("module:attribute", short help).
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("crowdcount.cli.analyze:analyze", "Count people and faces in video files."),
    "detectors": ("crowdcount.cli.detectors:detectors", "List the registered detectors and their arguments."),
    "deploy": ("crowdcount.cli.deploy:deploy", "Build, push and run the worker on ECS (task, service or stack)."),
    "worker": ("crowdcount.cli.worker:worker", "Serve the SQS queue: S3 video -> analysis -> S3 result + DynamoDB."),
    "sandbox": ("crowdcount.cli.sandbox:sandbox", "Start a local AWS (moto) with the bucket, queues and table."),
    "submit": ("crowdcount.cli.jobs:submit", "Upload a video and queue its analysis for the worker."),
    "status": ("crowdcount.cli.jobs:status", "Show a video's processing steps (DynamoDB document)."),
    "results": ("crowdcount.cli.jobs:results", "Download a video's result file from S3."),
    "eval": ("crowdcount.cli.eval:eval_command", "Measure counts and detections against ground truth."),
    "watch": ("crowdcount.cli.watch:watch", "Count people in live streams, webcams and real-time files."),
    "dashboard": ("crowdcount.cli.dashboard:dashboard", "Serve finished results (files, S3, job table) as a web page."),
    "stream": ("crowdcount.cli.stream:stream", "Kafka: publish camera frames, or count them in a consumer group."),
    "edge": ("crowdcount.cli.edge:edge", "Upload camera frames to S3, read answers back, report latency."),
    "find": ("crowdcount.cli.find:find", "Find a person from photos in videos and result files (appearance)."),
    "faces": ("crowdcount.cli.faces:faces", "Enrol people in a face gallery; list, remove, forget them."),
}


#: Exit code of a command interrupted by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


class UserError(click.ClickException):
    """A :class:`CrowdcountError` shown as one line (``Error: ...``) with its exit code."""

    def __init__(self, error: CrowdcountError) -> None:
        super().__init__(" ".join(line.strip() for line in str(error).splitlines() if line.strip()))
        # click types exit_code as a ClassVar, yet reads it per instance (as its own Exit sets it)
        self.exit_code = error.exit_code  # type: ignore[misc]


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, so ``--help`` never imports TensorFlow."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name][0].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx) if name in COMMANDS]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # an option of the group itself (--log-level loud, --bogus)
            raise one_line_usage_error(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrowdcountError as exc:
            raise UserError(exc) from None
        except click.UsageError as exc:  # no such command, or a subcommand's bad option
            raise one_line_usage_error(exc) from None
        except KeyboardInterrupt:  # Ctrl-C: the shell's code for an interrupted command (128 + SIGINT), not 1
            click.echo("Interrupted (Ctrl-C): outputs not finished were not written", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None


def one_line_usage_error(exc: click.UsageError) -> click.UsageError:
    """``exc`` as one line, not click's usage block: what is wrong and where help is."""
    if exc.ctx is None:
        return exc
    error = click.UsageError(f"{exc.format_message()} (see '{exc.ctx.command_path} --help')")
    error.exit_code = exc.exit_code  # type: ignore[misc]  # per instance, as above
    error.ctx = None
    return error


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message and any ``extra`` fields."""

    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Configure logging once, for the whole process (only the CLI calls this)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        quiet_opencv()
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "docker", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def quiet_opencv() -> None:
    """Hold back what OpenCV and its FFmpeg write to stderr themselves ("moov atom not found" for a file that is
    not a video, "can't open camera by index" and an exception dump for a missing webcam): crowdcount says what
    failed in one line of its own. A user's own OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL is kept."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read at OpenCV's first capture
    if "OPENCV_LOG_LEVEL" not in os.environ:
        os.environ["OPENCV_LOG_LEVEL"] = "SILENT"  # read when cv2 is imported
        cv2 = sys.modules.get("cv2")  # a subcommand's module may have imported it already
        if cv2 is not None:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crowdcount")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    envvar="CROWDCOUNT_LOG_LEVEL",
    default="warning",
    show_default=True,
    help="Log verbosity (logs go to stderr).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="CROWDCOUNT_LOG_FORMAT",
    default="text",
    show_default=True,
    help="Plain text or one JSON object per line.",
)
def cli(log_level: str, log_format: str) -> None:
    """Find and count people (bodies and faces) in videos, locally or on AWS."""
    configure_logging(log_level, log_format)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="crowdcount")


if __name__ == "__main__":
    main()
