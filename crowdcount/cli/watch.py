"""``crowdcount watch``: count people in live streams, webcams and files played in real time."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from crowdcount.analyzer.annotate import check_annotate_path
from crowdcount.analyzer.counting import parse_lines, parse_zones
from crowdcount.cli.analyze import detector_specs
from crowdcount.cli.common import (
    FloatRange,
    camera_geometry,
    cameras_option,
    config_option,
    counting_options,
    detector_options,
    get_config,
    identify_option,
    metrics_host_option,
    parse_key_values,
    pipeline_for,
    token_option,
)
from crowdcount.config import Config
from crowdcount.errors import ConfigError
from crowdcount.live import FILE, JsonLinesSink, LiveMetrics, Source, SourceStatus, Watcher, parse_source, unique_ids
from crowdcount.live.cameras import load_cameras
from crowdcount.live.pipeline import pipeline_factory
from crowdcount.signals import on_stop_signals

logger = logging.getLogger(__name__)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Duration(click.ParamType):  # type: ignore[type-arg]  # subscripting fails at run time on click 8.1
    """``500ms``, ``1s``, ``2.5m``, ``1h`` or a plain number of seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", str(value))
            if not match:
                self.fail(f"{value!r} is not a duration (e.g. 500ms, 1s, 2m, 1h)", param, ctx)
            seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
        if seconds <= 0:
            self.fail(f"{value!r} must be more than 0", param, ctx)
        return seconds


DURATION = Duration()


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name) is this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def source_options(func: Any) -> Any:
    """The options shared by the commands that read live sources."""
    for option in reversed(
        [
            click.option(
                "--realtime", is_flag=True, help="Play files at their own frame rate (live mode: frames may drop)."
            ),
            click.option(
                "--speed",
                type=FloatRange(min=0, min_open=True),
                default=1.0,
                show_default=True,
                help="With --realtime: playback rate (2 = twice real time).",
            ),
            click.option("--loop", is_flag=True, help="Start files again at their end (a looped stream)."),
            click.option("--read-timeout", type=DURATION, default=None, help="No frame for this long = stalled."),
            click.option("--open-timeout", type=DURATION, default=None, help="Longest wait for a first frame."),
            click.option(
                "--retries",
                type=click.IntRange(min=0),
                default=None,
                help="Failed connections in a row before a source gives up (default: never).",
            ),
            click.option("--duration", type=DURATION, default=None, help="Stop after this long (e.g. 30s, 10m)."),
            click.option(
                "--metrics-port",
                type=click.IntRange(0, 65535),
                default=None,
                help="Serve Prometheus metrics on this port (/metrics).",
            ),
            metrics_host_option,
        ]
    ):
        func = option(func)
    return func


def build_sources(
    texts: tuple[str, ...],
    config: Config,
    realtime: bool,
    speed: float,
    loop: bool,
    read_timeout: float | None,
    open_timeout: float | None,
    retries: int | None,
) -> list[Source]:
    """Sources for the ``SOURCE`` arguments, with the config's ``live`` timeouts and backoff."""
    live = config["live"]
    specs = unique_ids([parse_source(t) for t in texts])
    return [
        Source(
            spec,
            realtime=realtime,
            speed=speed,
            loop=loop,
            open_timeout_s=open_timeout or live["open_timeout_seconds"],
            read_timeout_s=read_timeout or live["read_timeout_seconds"],
            reconnect_delay_s=live["reconnect_delay_seconds"],
            max_reconnect_delay_s=live["max_reconnect_delay_seconds"],
            max_retries=retries if retries is not None else live["max_retries"],
        )
        for spec in specs
    ]


def plan_annotate(sources: list[str], annotate: str | None) -> dict[str, Path]:
    """The annotated video of each source: ``annotate`` itself when it is a video file name (one source), else
    ``annotate/SOURCE.mp4``. :class:`ConfigError` before any work when it cannot be written."""
    if annotate is None:
        return {}
    target = Path(annotate)
    if target.suffix and not target.is_dir():
        if len(sources) > 1:
            raise ConfigError(
                f"--annotate {annotate!r} is one file but {len(sources)} sources are watched",
                "give a folder to --annotate to get one video per source",
            )
        return {sources[0]: check_annotate_path(target)}
    return {s: check_annotate_path(target / f"{s.replace(':', '_').replace('/', '_')}.mp4") for s in sources}


def mode_line(sources: list[Source], verb: str = "analysed", max_fps: float | None = None) -> str:
    """Which mode is in force, for each source (``verb``: what is done with a frame; ``max_fps``: a cap on each
    source's frames, the others dropped)."""
    live = [s.id for s in sources if s.mode != FILE]
    files = [s.id for s in sources if s.mode == FILE]
    parts = []
    if live:
        parts.append(f"live mode ({', '.join(live)}): the latest frame is {verb}, older ones dropped and counted")
    if files:
        if max_fps is None:
            parts.append(f"file mode ({', '.join(files)}): every frame is {verb}, none dropped")
        else:
            parts.append(
                f"file mode ({', '.join(files)}): at most {max_fps:g} frames {verb} a second of video (--max-fps), "
                "the others dropped and counted"
            )
    return "; ".join(parts)


def stop_on_signals(stop: threading.Event) -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGINT set ``stop`` (main thread only)."""
    return on_stop_signals(lambda name: stop.set())


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    if len(counts) == 1:
        return str(next(iter(counts.values())))
    return " ".join(f"{c} {n}" for c, n in counts.items())


def _lines(counting: dict[str, Any]) -> str:
    return " ".join(f"{name} {c['in']}/{c['out']}" for name, c in counting.get("lines", {}).items()) or "-"


def _zones(counting: dict[str, Any]) -> str:
    zones = counting.get("zones", {})
    return " ".join(f"{name} {z['occupancy']} ({z['visitors']})" for name, z in zones.items()) or "-"


def status_table(rows: list[SourceStatus], title: str) -> Table:
    """The live table: one row per source (with tracked people, line crossings in/out and zone occupancy
    (visitors) when counting)."""
    table = Table(title=title, title_justify="left")
    tracked = any("unique_people" in r.counting for r in rows)
    lines = any(r.counting.get("lines") for r in rows)
    zones = any(r.counting.get("zones") for r in rows)
    columns = [
        ("Source", "left"),
        ("Mode", "left"),
        ("Status", "left"),
        ("fps in", "right"),
        ("fps analysed", "right"),
        ("People now", "right"),
        ("People max", "right"),
        *([("Unique", "right")] if tracked else []),
        *([("Lines in/out", "left")] if lines else []),
        *([("Zones now (visitors)", "left")] if zones else []),
        ("Dropped", "right"),
        ("Reconnects", "right"),
        ("Latency", "right"),
    ]
    for column, justify in columns:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    colours = {"streaming": "green", "ended": "blue", "failed": "red", "stalled": "red", "reconnecting": "yellow"}
    for r in rows:
        colour = colours.get(r.status, "yellow")
        status = f"[{colour}]{r.status}[/{colour}]"
        if r.last_error and r.status != "streaming":
            status += f" ({r.last_error})"
        table.add_row(
            r.source,
            r.mode,
            status,
            f"{r.decode_fps:.1f}",
            f"{r.inference_fps:.1f}",
            _counts(r.people_now),
            _counts(r.people_max),
            *([str(r.counting.get("unique_people", "-"))] if tracked else []),
            *([_lines(r.counting)] if lines else []),
            *([_zones(r.counting)] if zones else []),
            str(r.frames_dropped),
            str(r.reconnects),
            f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-",
        )
    return table


def _close(sinks: list[Any], server: Any | None) -> None:
    """Close the outputs and the metrics server (a failing close is logged: it must not hide the run's result)."""
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:
            logger.warning("closing %s: %s", type(sink).__name__, exc)
    if server is not None:
        server.close()


@click.command()
@click.argument("sources", nargs=-1, required=False)
@detector_options
@counting_options
@identify_option
@cameras_option
@click.option(
    "--annotate",
    type=click.Path(),
    default=None,
    help="Write each source's video with boxes, track ids, lines, zones and counts drawn: an .mp4 file (one "
    "source) or a folder (SOURCE.mp4 each).",
)
@source_options
@click.option(
    "--every", type=DURATION, default=None, help="One record per source per interval (e.g. 1s) instead of per frame."
)
@click.option(
    "-o", "--output", default=None, help="JSON lines to this file, or - for stdout (default: stdout when piped)."
)
@click.option("--no-boxes", is_flag=True, help="Per-frame records carry counts only, no boxes.")
@click.option(
    "--redis",
    "redis_url",
    default=None,
    is_flag=False,
    flag_value="",
    help="Also XADD records to a Redis stream at this URL (default: live.redis_url).",
)
@click.option("--redis-stream", default=None, help="Redis stream key (default: live.redis_stream).")
@click.option(
    "--kafka",
    "kafka_bootstrap",
    default=None,
    is_flag=False,
    flag_value="",
    help="Also publish records to Kafka at HOST:PORT (default: live.kafka_bootstrap).",
)
@click.option("--kafka-topic", default=None, help="Kafka results topic (default: live.kafka_results_topic).")
@click.option("--table/--no-table", default=None, help="The live table on stderr (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="At the end, print every source's status as JSON.")
@click.option(
    "--web",
    default=None,
    metavar="[HOST:]PORT",
    help="Serve the live dashboard here (default host 127.0.0.1; any other needs --token). Needs crowdcount[web].",
)
@token_option
@click.option(
    "--max-occupancy",
    "max_occupancy",
    multiple=True,
    metavar="ZONE=N",
    help="With --web: alert when more than N people are in ZONE (repeatable).",
)
@click.option("--webhook", default=None, help="With --web: POST each alert (raised, cleared) as JSON to this URL.")
@config_option
def watch(
    sources: tuple[str, ...],
    detectors: tuple[str, ...],
    min_score: float | None,
    detector_arg: tuple[str, ...],
    track: bool | None,
    lines: tuple[str, ...],
    zones: tuple[str, ...],
    identify: str | None,
    cameras_path: str | None,
    annotate: str | None,
    realtime: bool,
    speed: float,
    loop: bool,
    read_timeout: float | None,
    open_timeout: float | None,
    retries: int | None,
    duration: float | None,
    metrics_port: int | None,
    metrics_host: str,
    every: float | None,
    output: str | None,
    no_boxes: bool,
    redis_url: str | None,
    redis_stream: str | None,
    kafka_bootstrap: str | None,
    kafka_topic: str | None,
    table: bool | None,
    as_json: bool,
    web: str | None,
    token: str | None,
    max_occupancy: tuple[str, ...],
    webhook: str | None,
    config_path: str | None,
) -> None:
    """Count people in live SOURCES: rtsp:// or http(s):// stream URLs, webcam numbers (0) or video files,
    each optionally named NAME=SOURCE, and the cameras of a --cameras file (each with its own lines and zones).

    Streams and webcams run in live mode: the latest frame is analysed and older ones are dropped (and
    counted), so the counts never fall behind. Files are analysed frame by frame (file mode, nothing
    dropped) unless --realtime plays them at their own rate. A source that fails or stalls reconnects with
    backoff; the others go on. Runs until Ctrl-C/SIGTERM, --duration, or every source has ended.
    Exit 1 when a source gave up (--retries). With --web, a dashboard (live view, counts, lines, zones, chart,
    alerts) is served until Ctrl-C or --duration, also after every source has ended.
    """
    if web is None and (max_occupancy or webhook):
        raise ConfigError("--max-occupancy and --webhook are alerts of the dashboard", "add --web [HOST:]PORT")
    counting_lines = parse_lines(lines, "--line") if lines else None
    counting_zones = parse_zones(zones, "--zone") if zones else None
    config = get_config(config_path, {"tracking": {"enabled": track}})
    live = config["live"]
    specs = detector_specs(
        config["human_detection"]["detectors"],
        detectors,
        min_score,
        None,
        parse_key_values(detector_arg, "--detector-arg"),
    )
    cameras = load_cameras(cameras_path) if cameras_path else []
    if not sources and not cameras:
        raise ConfigError("no sources to watch", "give SOURCES (URLs, webcam numbers, files) or --cameras FILE")
    given = {parse_source(text).id for text in sources}
    clash = next((c.name for c in cameras if c.name in given), None)
    if clash is not None:
        raise ConfigError(f"source name {clash!r} is given twice (SOURCES and --cameras)", "give each source one name")
    geometry = camera_geometry(cameras, counting_lines, counting_zones, config)
    pipeline = pipeline_for(config, specs, counting_lines, counting_zones, identify)
    built = pipeline.detectors
    watched = build_sources(
        tuple(sources) + tuple(c.argument for c in cameras), config, realtime, speed, loop, read_timeout,
        open_timeout, retries,
    )  # fmt: skip
    names = [s.id for s in watched]
    annotate_for = plan_annotate(names, annotate)
    factory = pipeline_factory(pipeline, annotate_for.get if annotate else None, geometry)
    show_table = sys.stderr.isatty() if table is None else table
    sinks: list[Any] = []
    server = None
    dashboard = None
    try:  # what is opened before the watching starts is closed again when a later step fails
        if output is not None:
            try:
                sinks.append(JsonLinesSink(output))
            except OSError as exc:  # a read-only folder, a folder given as the file
                raise ConfigError(
                    f"--output {output!r} cannot be written: {exc.strerror or exc}", "give a file in a writable folder"
                ) from None
        elif not sys.stdout.isatty() and not as_json:
            sinks.append(JsonLinesSink("-"))
        if redis_url is not None:
            from crowdcount.live.brokers import RedisStreamSink

            sinks.append(
                RedisStreamSink(
                    redis_url or live["redis_url"], redis_stream or live["redis_stream"], live["redis_maxlen"]
                )
            )
        if kafka_bootstrap is not None:
            from crowdcount.live.brokers import KafkaResultSink

            sinks.append(
                KafkaResultSink(
                    kafka_bootstrap or live["kafka_bootstrap"],
                    kafka_topic or live["kafka_results_topic"],
                    live["kafka_partitions"],
                )
            )
        metrics = LiveMetrics() if metrics_port is not None or web is not None else None
        if metrics is not None and metrics_port is not None:
            from crowdcount.metrics import serve_metrics

            server = serve_metrics(metrics.registry, metrics_port, metrics_host)
        console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
        watcher = Watcher(built, watched, sinks, every=every, metrics=metrics, boxes=not no_boxes, processors=factory)
        if web is not None:
            from crowdcount.web.app import parse_limits, start_live_dashboard

            dashboard = start_live_dashboard(
                watcher,
                web,
                token,
                metrics.registry if metrics is not None else None,
                parse_limits(max_occupancy),
                webhook,
                source_limits={c.name: dict(c.max_occupancy) for c in cameras if c.max_occupancy},
            )
    except BaseException:
        _close(sinks, server)
        raise
    click.echo(mode_line(watched), err=True)
    if server is not None:
        where = " (this machine only)" if _is_loopback(metrics_host) else ""
        click.echo(f"metrics on {server.url}{where}", err=True)
    if dashboard is not None:
        click.echo(f"dashboard on {dashboard[1].url}{'?token=…' if token else ''}", err=True)
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            watcher.start()
            deadline = time.monotonic() + duration if duration else None  # after the models loaded
            title = "crowdcount watch (Ctrl-C stops)"
            with (
                Live(status_table(watcher.snapshot(), title), console=console, refresh_per_second=4)
                if show_table
                else contextlib.nullcontext() as view
            ):
                ended = False
                while not stop.is_set() and (not watcher.done or (dashboard is not None and watcher.error is None)):
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    if watcher.done:  # the dashboard stays up with the final counts
                        if not ended:
                            ended = True
                            click.echo("every source has ended; the dashboard stays up until Ctrl-C", err=True)
                        stop.wait(0.25)
                    else:
                        watcher.wait(0.25)
                    if view is not None:
                        view.update(status_table(watcher.snapshot(), title))
                if view is not None:
                    view.update(status_table(watcher.snapshot(), title))
    finally:
        watcher.stop()
        if dashboard is not None:
            dashboard[0].stop()
            dashboard[1].stop()
        _close(sinks, server)
    if watcher.error is not None:
        raise watcher.error
    rows = watcher.snapshot()
    if as_json:
        click.echo(json.dumps({"sources": [r.to_dict() for r in rows]}, indent=2))
    elif not show_table:
        console.print(status_table(rows, "crowdcount watch"))
    if watcher.failed_sources:
        click.echo(f"Error: source(s) gave up: {', '.join(watcher.failed_sources)}", err=True)  # why: logged above
        raise SystemExit(1)
