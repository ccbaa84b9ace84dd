"""``crowdcount stream``: the distributed layout over Kafka: cameras -> raw topic -> consumers -> results."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

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
)
from crowdcount.cli.watch import DURATION, build_sources, mode_line, source_options, stop_on_signals

logger = logging.getLogger(__name__)


@click.group()
def stream() -> None:
    """Kafka: publish camera frames (produce) and count people in them in a consumer group (consume).

    Frames go to the raw topic as JPEG keyed by source (so a source stays on one partition, in order);
    each consumer of the group analyses its partitions and publishes results keyed by source. Add
    consumers to scale out, up to the raw topic's partition count.
    """


F = TypeVar("F", bound=Callable[..., Any])


def _kafka_options(func: F) -> F:
    func = click.option(
        "--partitions",
        type=click.IntRange(min=1),
        default=None,
        help="Partitions of topics this creates (default: live.kafka_partitions).",
    )(func)
    func = click.option("--topic", default=None, help="Raw frames topic (default: live.kafka_raw_topic).")(func)
    func = click.option(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (default: live.kafka_bootstrap).",
    )(func)
    return func


@stream.command()
@click.argument("sources", nargs=-1, required=True)
@_kafka_options
@click.option(
    "--max-fps",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Publish at most this many frames per second per source (others are dropped; a file without "
    "--realtime: per second of the file).",
)
@click.option("--quality", type=click.IntRange(1, 100), default=None, help="JPEG quality (default: live.jpeg_quality).")
@source_options
@config_option
def produce(
    sources: tuple[str, ...],
    bootstrap: str | None,
    topic: str | None,
    partitions: int | None,
    max_fps: float | None,
    quality: int | None,
    realtime: bool,
    speed: float,
    loop: bool,
    read_timeout: float | None,
    open_timeout: float | None,
    retries: int | None,
    duration: float | None,
    metrics_port: int | None,
    metrics_host: str,
    config_path: str | None,
) -> None:
    """Publish the frames of SOURCES (URLs, webcams, files; NAME=SOURCE names one) to the raw topic as JPEG,
    keyed by source, with the source, capture time and frame index in the headers."""
    from crowdcount.live import FILE, LiveMetrics
    from crowdcount.live.brokers import FrameProducer
    from crowdcount.live.sources import FAILED

    config = get_config(config_path)
    live = config["live"]
    readers = build_sources(sources, config, realtime, speed, loop, read_timeout, open_timeout, retries)  # first
    producer = FrameProducer(
        bootstrap or live["kafka_bootstrap"],
        topic or live["kafka_raw_topic"],
        partitions or live["kafka_partitions"],
        quality or live["jpeg_quality"],
    )
    metrics = None
    server = None
    if metrics_port is not None:
        from crowdcount.metrics import serve_metrics

        metrics = LiveMetrics()
        server = serve_metrics(metrics.registry, metrics_port, metrics_host)
    click.echo(mode_line(readers, verb="published", max_fps=max_fps), err=True)
    wake = threading.Event()
    stop = threading.Event()
    for reader in readers:
        reader.notify = wake.set
    last: dict[str, float] = {}
    skipped: dict[str, int] = dict.fromkeys((r.id for r in readers), 0)
    by_file = {r.id for r in readers if r.mode == FILE}
    started = time.monotonic()
    try:
        with stop_on_signals(stop):
            for reader in readers:
                reader.start()
            while not stop.is_set():
                if duration is not None and time.monotonic() - started >= duration:
                    break
                wake.clear()
                frames = [f for f in (r.take() for r in readers) if f is not None]
                if not frames:
                    if all(r.finished for r in readers):
                        break
                    wake.wait(0.1)
                    continue
                for frame in frames:
                    # a file read frame by frame is capped per second of the file, not of the wall clock (it is
                    # read far faster than real time: every frame but the first would be dropped)
                    position = frame.position_ms if frame.source in by_file else None
                    now = position / 1000 if position is not None else frame.captured_mono
                    since = now - last.get(frame.source, -1e9)
                    if max_fps is not None and 0 <= since < 1.0 / max_fps - 1e-6:  # < 0: a looped file restarted
                        skipped[frame.source] += 1
                        continue
                    last[frame.source] = now
                    producer.publish(frame)
                    if metrics is not None:
                        metrics.analyzed.labels(frame.source).inc()
                if metrics is not None:
                    for r in readers:
                        metrics.sync_counter(metrics.decoded, r.id, r.frames_decoded)
                        metrics.sync_counter(metrics.dropped, r.id, r.frames_dropped + skipped[r.id])
                        metrics.sync_counter(metrics.reconnects, r.id, r.reconnects)
    finally:
        for reader in readers:
            reader.stop(timeout=2.0)
        left = producer.close()
        if server is not None:
            server.close()
    summary = {
        "published": producer.published - left,
        "undelivered": left + producer.delivery.failed,
        "sources": {
            r.id: {
                "status": r.status,
                "decoded": r.frames_decoded,
                "dropped": r.frames_dropped + skipped[r.id],
                "reconnects": r.reconnects,
            }
            for r in readers
        },
    }
    click.echo(json.dumps(summary))
    failed = [r.id for r in readers if r.status == FAILED]
    if failed:  # as watch: a source that gave up (--retries, a file that is no video) is exit 1; why: logged above
        click.echo(f"Error: source(s) gave up: {', '.join(failed)}", err=True)
    if summary["undelivered"] or failed:
        raise SystemExit(1)


@stream.command()
@_kafka_options
@click.option("--group", default=None, help="Consumer group (default: live.kafka_group).")
@click.option("--results-topic", default=None, help="Results topic (default: live.kafka_results_topic).")
@detector_options
@counting_options
@identify_option
@cameras_option
@click.option(
    "--max-age",
    type=DURATION,
    default=None,
    help="Skip frames older than this when received (a consumer that fell behind catches up).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Messages per batch.")
@click.option("--no-boxes", is_flag=True, help="Results carry counts only, no boxes.")
@click.option("--duration", type=DURATION, default=None, help="Stop after this long.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after analysing N frames.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (/metrics).",
)
@metrics_host_option
@config_option
def consume(
    bootstrap: str | None,
    topic: str | None,
    partitions: int | None,
    group: str | None,
    results_topic: str | None,
    detectors: tuple[str, ...],
    min_score: float | None,
    detector_arg: tuple[str, ...],
    track: bool | None,
    lines: tuple[str, ...],
    zones: tuple[str, ...],
    identify: str | None,
    cameras_path: str | None,
    max_age: float | None,
    batch_size: int,
    no_boxes: bool,
    duration: float | None,
    max_frames: int | None,
    metrics_port: int | None,
    metrics_host: str,
    config_path: str | None,
) -> None:
    """Count people in the raw topic's frames as a member of a consumer group; publish one JSON result per
    frame to the results topic, keyed by source. Offsets are committed once results are delivered.

    With tracking (the default), --line and --zone, each source is tracked and counted by the consumer that
    owns its partition, and results carry lines, zones and unique_people since that consumer started."""
    from crowdcount.live import LiveMetrics
    from crowdcount.live.brokers import FrameConsumer
    from crowdcount.live.pipeline import pipeline_factory

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
    from crowdcount.live.cameras import load_cameras

    cameras = load_cameras(cameras_path, need_source=False) if cameras_path else []
    geometry = camera_geometry(cameras, counting_lines, counting_zones, config)
    pipeline = pipeline_for(config, specs, counting_lines, counting_zones, identify)
    built = pipeline.detectors
    factory = pipeline_factory(pipeline, geometry=geometry)
    metrics = LiveMetrics() if metrics_port is not None else None
    consumer = FrameConsumer(
        bootstrap or live["kafka_bootstrap"],
        group or live["kafka_group"],
        topic or live["kafka_raw_topic"],
        results_topic or live["kafka_results_topic"],
        built,
        partitions=partitions or live["kafka_partitions"],
        max_age_s=max_age,
        batch_size=batch_size,
        metrics=metrics,
        boxes=not no_boxes,
        processors=factory,
    )
    server = None
    if metrics is not None and metrics_port is not None:
        from crowdcount.metrics import serve_metrics

        server = serve_metrics(metrics.registry, metrics_port, metrics_host)
    stop = threading.Event()

    def stop_when_asked() -> None:
        stop.wait()
        consumer.stop()

    watcher = threading.Thread(target=stop_when_asked, daemon=True)
    watcher.start()
    try:
        with stop_on_signals(stop):
            consumer.run(duration_s=duration, max_frames=max_frames)
    finally:
        stop.set()
        if server is not None:
            server.close()
    click.echo(json.dumps({"analyzed": consumer.analyzed, "dropped": consumer.dropped, "invalid": consumer.invalid}))
