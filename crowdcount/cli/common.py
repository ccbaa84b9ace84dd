"""Options and helpers shared by the commands."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from crowdcount.config import Config, load_config
from crowdcount.errors import ConfigError
from crowdcount.metrics import DEFAULT_METRICS_HOST

if TYPE_CHECKING:
    from crowdcount.analyzer.counting import Line, Zone
    from crowdcount.analyzer.pipeline import AnnotateFor, Pipeline
    from crowdcount.live.cameras import Camera

F = TypeVar("F", bound=Callable[..., Any])


class FloatRange(click.FloatRange):
    """click's ``FloatRange`` (no bounds: any number) that also refuses ``nan`` and ``inf``, which pass its bound
    checks (every comparison with nan is false) and fail later, deep in the work, with a traceback."""

    name = "number"  # "'abc' is not a valid number."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number

    def _describe_range(self) -> str:
        # click describes a range without bounds as "x<=None" in --help
        return "" if self.min is None and self.max is None else str(super()._describe_range())


def metrics_host_option(func: F) -> F:
    """``--metrics-host``: the address ``--metrics-port`` binds (this machine only unless told otherwise)."""
    return click.option(
        "--metrics-host",
        default=DEFAULT_METRICS_HOST,
        show_default=True,
        help="Address the metrics server binds (0.0.0.0: every interface, e.g. in a container scraped from outside).",
    )(func)


def config_option(func: F) -> F:
    """``--config PATH``: the variables.json to read (default: $CROWDCOUNT_CONFIG, ./variables.json)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="variables.json to read (default: $CROWDCOUNT_CONFIG, else ./variables.json, else built-in).",
    )(func)


def detector_options(func: F) -> F:
    """``-d/--detector`` (repeatable), ``--min-score`` and ``--detector-arg``: which detectors run, and any of
    their arguments (see ``crowdcount detectors``)."""
    options = [
        click.option("-d", "--detector", "detectors", multiple=True, help="Detector to run (repeatable): human, face."),
        click.option("--min-score", type=FloatRange(0, 1), default=None, help="Minimum detection score."),
        click.option(
            "--detector-arg",
            "detector_arg",
            multiple=True,
            metavar="DETECTOR.KEY=VALUE",
            help="Any detector argument, e.g. human.preset=fast or human.model_path=/models/frozen_inference_graph.pb "
            "(repeatable).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def get_config(config_path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load the configuration with CLI ``overrides`` applied last."""
    return load_config(config_path, overrides=overrides)


def parse_key_values(pairs: tuple[str, ...], option: str) -> dict[str, dict[str, Any]]:
    """Parse ``DETECTOR.KEY=VALUE`` pairs (values as JSON where they parse) into ``{detector: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        detector, dot, key = target.partition(".")
        if not sep or not dot or not detector or not key:
            raise ConfigError(f"{option} {pair!r} is not DETECTOR.KEY=VALUE", f"e.g. {option} human.model_path=/m.pb")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(detector, {})[key] = value
    return out


def counting_options(func: F) -> F:
    """``--track/--no-track``, ``--line`` and ``--zone`` (repeatable), as ``crowdcount analyze`` takes them."""
    options = [
        click.option(
            "--track/--no-track",
            "track",
            default=None,
            help="Track people: unique people, line and zone counts (default: on, config tracking.enabled).",
        ),
        click.option(
            "--line",
            "lines",
            multiple=True,
            metavar="[NAME=]X1,Y1,X2,Y2",
            help="Count people crossing this line, in and out (repeatable; pixels, or fractions of the frame if all "
            "<= 1).",
        ),
        click.option(
            "--zone",
            "zones",
            multiple=True,
            metavar="[NAME=]X1,Y1,X2,Y2,X3,Y3,...",
            help="Count people in this polygon: occupancy and visitors (repeatable; pixels or fractions).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def identify_option(func: F) -> F:
    """``--identify GALLERY``: name the faces against a gallery (over the config's ``faces.gallery``)."""
    return click.option(
        "--identify",
        "identify",
        default=None,
        metavar="GALLERY",
        help="Name the faces against a gallery (file or dynamodb://TABLE; default: the config's faces.gallery).",
    )(func)


def token_option(func: F) -> F:
    """``--token``: the dashboard's access token (``$CROWDCOUNT_WEB_TOKEN``), for ``dashboard`` and ``watch --web``."""
    return click.option(
        "--token",
        envvar="CROWDCOUNT_WEB_TOKEN",
        default=None,
        help="The dashboard's access token (every route wants it; $CROWDCOUNT_WEB_TOKEN).",
    )(func)


def pipeline_for(
    config: Config,
    specs: list[list[Any]],
    lines: list[Line] | None,
    zones: list[Zone] | None,
    identify: str | None,
    annotate: AnnotateFor | None = None,
) -> Pipeline:
    """The one assembly (:func:`crowdcount.analyzer.pipeline.build_pipeline`) with the command line's detectors,
    lines, zones, gallery and annotated-video paths; a ``dynamodb://`` gallery registers its scheme first (a
    local one needs no AWS)."""
    from crowdcount.analyzer.pipeline import PipelineOverrides, build_pipeline
    from crowdcount.faces.identify import gallery_stage

    location = identify or config["faces"]["gallery"]
    if location and "://" in location:
        import crowdcount.aws.gallery  # noqa: F401  (registers dynamodb://)
    overrides = PipelineOverrides(detectors=specs, lines=lines, zones=zones, annotate=annotate, gallery=identify)
    return build_pipeline(config, overrides, gallery_stage(config))


def cameras_option(func: F) -> F:
    """``--cameras FILE``: live sources with their own lines, zones and occupancy limits (YAML or JSON)."""
    return click.option(
        "--cameras",
        "cameras_path",
        default=None,
        metavar="FILE",
        help="Cameras file (YAML or JSON): each camera's source, its own lines, zones and max_occupancy "
        "(docs/live.md). --line/--zone given here apply to every camera besides.",
    )(func)


def camera_geometry(
    cameras: list[Camera], lines: list[Line] | None, zones: list[Zone] | None, config: Config
) -> dict[str, tuple[list[Line], list[Zone]]]:
    """Each camera with lines or zones of its own -> those plus the command line's (which apply to every
    source); :class:`ConfigError` when they cannot be counted (tracking off)."""
    own = {c.name: (list(c.lines) + list(lines or []), list(c.zones) + list(zones or [])) for c in cameras}
    own = {name: geometry for name, geometry in own.items() if geometry[0] or geometry[1]}
    if own and not config["tracking"]["enabled"]:
        name = next(iter(own))
        raise ConfigError(
            f"camera {name!r}: counting lines and zones needs tracked people, but tracking is off",
            "drop --no-track",
        )
    return own


def remove_new_empty_folders_at_exit(*outputs: str | None) -> None:
    """Folders that ``outputs`` (files or folders, some not there yet) would add, removed again when the command
    ends, on success or failure, if they are still empty: a run that fails leaves nothing behind."""
    from pathlib import Path

    new: list[Path] = []
    for output in outputs:
        if not output:
            continue
        path = Path(output).absolute()
        while not path.exists() and path != path.parent:
            new.append(path)
            path = path.parent

    def remove() -> None:
        for folder in sorted(set(new), key=lambda p: len(p.parts), reverse=True):  # the deepest first
            if folder.is_dir() and not folder.is_symlink():
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only an empty one

    click.get_current_context().call_on_close(remove)
