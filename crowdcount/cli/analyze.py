"""``crowdcount analyze``: count people and faces in video files."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console, JustifyMethod, OverflowMethod
from rich.markup import escape
from rich.table import Table
from tqdm import tqdm

from crowdcount.analyzer import to_document, write_csv, write_json
from crowdcount.analyzer.annotate import VIDEO_SUFFIXES, check_annotate_path
from crowdcount.analyzer.counting import CountingProcessor, parse_lines, parse_zones
from crowdcount.analyzer.files import (
    check_not_inputs,
    find_videos,
    leave_out_outputs,
    plan_outputs,
    temporary_beside,
)
from crowdcount.analyzer.plot import plot_counts
from crowdcount.analyzer.video import probe_video
from crowdcount.cli.common import (
    FloatRange,
    config_option,
    detector_options,
    get_config,
    parse_key_values,
    pipeline_for,
    remove_new_empty_folders_at_exit,
)
from crowdcount.config import Config
from crowdcount.detectors import detector_parameters, resolve_name
from crowdcount.errors import ConfigError, CrowdcountError, VideoError

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = "crowdcount_results"
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def detector_specs(
    configured: Iterable[Sequence[Any]],
    names: tuple[str, ...],
    min_score: float | None,
    batch_size: int | None,
    detector_args: dict[str, dict[str, Any]],
) -> list[list[Any]]:
    """The ``[name, arguments]`` list to build: the chosen names (with any arguments the config gives
    them) or the configured list, then the CLI's overrides."""
    by_name = {resolve_name(name): dict(args) for name, args in configured}
    specs: list[list[Any]]
    if names:
        specs = [[resolve_name(n), dict(by_name.get(resolve_name(n), {}))] for n in names]
    else:
        specs = [[resolve_name(n), dict(a)] for n, a in configured]
    chosen = {name for name, _ in specs}
    for target in detector_args:
        if resolve_name(target) not in chosen:
            raise ConfigError(
                f"--detector-arg names detector {target!r}, which is not being run",
                f"running: {', '.join(sorted(chosen))}",
            )
    for name, args in specs:
        if min_score is not None:
            args["min_detection_score"] = min_score
        if batch_size is not None:
            args["max_batch_size"] = batch_size
        for target, extra in detector_args.items():
            if resolve_name(target) == name:
                _check_arg_types(name, extra)
                args.update(extra)
    return specs


def _check_arg_types(name: str, extra: dict[str, Any]) -> None:
    """A list or object given for an argument whose default is a number or text is a usage error (exit 2), not a
    ``TypeError`` from deep inside the detector."""
    defaults = detector_parameters(name)
    for key, value in extra.items():
        default = defaults.get(key)
        if isinstance(value, (list, dict)) and isinstance(default, (str, int, float, bool)):
            raise ConfigError(
                f"--detector-arg {name}.{key} must be {type(default).__name__}, got a JSON "
                f"{'list' if isinstance(value, list) else 'object'}: {json.dumps(value)[:80]}",
                f"e.g. {name}.{key}={json.dumps(default)}",
            )


def _fmt_time(ms: float | None) -> str:
    if ms is None:
        return "-"
    seconds = ms / 1000.0
    return f"{int(seconds // 60)}:{seconds % 60:05.2f}"


@click.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path())
@detector_options
@click.option(
    "--frame-ratio",
    type=FloatRange(0, 1, min_open=True),
    default=None,
    help="Share of frames to analyse, in (0, 1] (default: from --sample-fps).",
)
@click.option(
    "--sample-fps",
    type=FloatRange(0, 1000, min_open=True),
    default=None,
    metavar="FPS",
    help="Analyse this many frames of each second of video, whatever its frame rate (default 8; "
    "config human_detection.sample_fps). Given here, it replaces a configured frame_ratio; not with --frame-ratio.",
)
@click.option(
    "--smooth",
    "smooth_s",
    type=FloatRange(0, 60),
    default=None,
    metavar="SECONDS",
    help="Report counts as a running median over this many seconds (0: raw per-frame counts; default 1).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Frames per model call.")
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Result JSON: a file (one video) or a folder (one file per video).",
)
@click.option("--csv", "csv_path", type=click.Path(), default=None, help="Per-frame counts as CSV: a file or folder.")
@click.option(
    "--track/--no-track",
    "track",
    default=None,
    help="Track people: unique people, occupancy, time present, track ids (default: on, config tracking.enabled).",
)
@click.option(
    "--line",
    "lines",
    multiple=True,
    metavar="[NAME=]X1,Y1,X2,Y2",
    help="Count people crossing this line, in and out (repeatable; pixels, or fractions of the frame if all <= 1).",
)
@click.option(
    "--zone",
    "zones",
    multiple=True,
    metavar="[NAME=]X1,Y1,X2,Y2,X3,Y3,...",
    help="Count people in this polygon over time and their dwell time (repeatable; pixels or fractions).",
)
@click.option(
    "--annotate",
    type=click.Path(),
    default=None,
    help="Write the video with boxes, track ids, lines, zones and counts drawn: an .mp4 file or a folder.",
)
@click.option("--plot", type=click.Path(), default=None, help="Plot the counts over time: a .png file or a folder.")
@click.option(
    "--embeddings/--no-embeddings",
    default=None,
    help="Store each person's appearance vector (float16) in the result file, for 'crowdcount find'.",
)
@click.option(
    "--calibration",
    type=click.Path(),
    default=None,
    help="Ground calibration (JSON: 4+ image points and their ground metres): report close contacts.",
)
@click.option(
    "--contact-distance",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Contact distance in metres (default 1.5).",
)
@click.option(
    "--contact-seconds",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Shortest contact reported, seconds (default 2).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table.")
@click.option(
    "--identify",
    "identify",
    default=None,
    metavar="GALLERY",
    help="Name the faces against a gallery (file or dynamodb://TABLE; default: the config's faces.gallery).",
)
@config_option
def analyze(
    videos: tuple[str, ...],
    detectors: tuple[str, ...],
    frame_ratio: float | None,
    sample_fps: float | None,
    smooth_s: float | None,
    min_score: float | None,
    batch_size: int | None,
    detector_arg: tuple[str, ...],
    output: str,
    csv_path: str | None,
    track: bool | None,
    lines: tuple[str, ...],
    zones: tuple[str, ...],
    annotate: str | None,
    plot: str | None,
    embeddings: bool | None,
    calibration: str | None,
    contact_distance: float | None,
    contact_seconds: float | None,
    progress: bool | None,
    as_json: bool,
    identify: str | None,
    config_path: str | None,
) -> None:
    """Count people and faces in VIDEOS (files or folders of videos).

    Writes one result JSON per video and prints a summary. One bad video is reported and the others
    still run; the exit status is 0 only when every video succeeded.
    """
    remove_new_empty_folders_at_exit(output, csv_path, annotate, plot)
    if frame_ratio is not None and sample_fps is not None:
        raise ConfigError(
            "--frame-ratio and --sample-fps both choose the frames analysed",
            "give one: --frame-ratio 0.2 analyses every fifth frame, --sample-fps 2 two frames a second",
        )
    counting_lines = parse_lines(lines, "--line") if lines else None
    counting_zones = parse_zones(zones, "--zone") if zones else None
    config = get_config(
        config_path,
        {
            "human_detection": {"frame_ratio": frame_ratio, "sample_fps": sample_fps, "count_smoothing_s": smooth_s},
            "tracking": {
                "enabled": track,
                "embeddings": embeddings,
                "calibration": calibration,
                "contact_distance": contact_distance,
                "contact_seconds": contact_seconds,
            },
        },
    )
    if sample_fps is not None and config.human_detection.frame_ratio is not None:
        # the command line's --sample-fps, not a frame_ratio of the file or the environment, picks the frames
        data = config.to_dict()
        data["human_detection"]["frame_ratio"] = None
        config = Config(data, config.source)
    block = config.human_detection
    specs = detector_specs(
        block.detectors, detectors, min_score, batch_size, parse_key_values(detector_arg, "--detector-arg")
    )
    output_folders = [
        Path(folder)
        for folder, is_file in (
            (output, Path(output).suffix.lower() == ".json"),
            (csv_path, csv_path is not None and Path(csv_path).suffix.lower() == ".csv"),
            (annotate, annotate is not None and bool(Path(annotate).suffix)),
            (plot, plot is not None and bool(Path(plot).suffix)),
        )
        if folder is not None and (Path(folder).is_dir() or not is_file)
    ]
    paths = leave_out_outputs(find_videos(videos), videos, output_folders)
    if not paths:
        raise ConfigError(
            "no videos found in " + ", ".join(videos),
            "give video files, image-sequence folders (numbered frames, MOTChallenge sequences) or folders of them",
        )
    json_paths = plan_outputs(paths, output, ".json", "--output")
    csv_paths = plan_outputs(paths, csv_path, ".csv", "--csv")
    annotate_paths = plan_media(paths, annotate, VIDEO_SUFFIXES, "--annotate")
    plot_paths = plan_media(paths, plot, PLOT_SUFFIXES, "--plot")
    for option, planned in (
        ("--output", json_paths),
        ("--csv", csv_paths),
        ("--annotate", annotate_paths),
        ("--plot", plot_paths),
    ):
        check_not_inputs(paths, planned, option)
    # each annotated video is written under a hidden temporary name and renamed once its analysis succeeded: a
    # video that fails or is interrupted part way leaves no half-annotated video (nor replaces an earlier one)
    annotate_for = {str(p): temporary_beside(a) for p, a in zip(paths, annotate_paths, strict=True) if a is not None}
    pipeline = pipeline_for(
        config,
        specs,
        counting_lines,
        counting_zones,
        identify,
        (lambda info: annotate_for.get(info.path)) if annotate else None,
    )
    check_geometry(pipeline.processors, paths)
    analyzer = pipeline.analyzer()
    analyzer.load()  # a model that cannot load is one error, before any video

    rows: list[dict[str, Any]] = []
    for video, json_path, csv_out, plot_out, annotate_out in zip(
        paths, json_paths, csv_paths, plot_paths, annotate_paths, strict=True
    ):
        annotating = annotate_for.get(str(video))
        try:
            with tqdm(
                desc=video.name,
                unit="frame",
                disable=None if progress is None else not progress,
                dynamic_ncols=True,
                leave=False,
            ) as bar:

                def advance(n: int, total: int, bar: tqdm = bar) -> None:
                    if total and bar.total is None:
                        bar.reset(total=total)
                    bar.update(n)

                result = analyzer.analyze(video, progress=advance)
            section = result.sections.get("annotate")
            if annotating is not None and annotate_out is not None and section is not None:
                try:
                    os.replace(annotating, annotate_out)
                except OSError as exc:
                    raise VideoError(f"{video}: the annotated video cannot be written: {exc}") from None
                section["path"] = str(annotate_out)
            document = to_document(result)
            try:
                if json_path is not None:
                    write_json(document, json_path)
                if csv_out is not None:
                    write_csv(document, csv_out)
                if plot_out is not None:
                    plot_counts(document, plot_out)
            except OSError as exc:
                raise VideoError(f"{video}: results cannot be written: {exc}") from None
            rows.append(
                {
                    "video": str(video),
                    "ok": True,
                    "result_file": str(json_path) if json_path else None,
                    "csv_file": str(csv_out) if csv_out else None,
                    "plot_file": str(plot_out) if plot_out else None,
                    "summary": document["summary"],
                    "count_smoothing": document["count_smoothing"],
                    "frames_decoded": result.frames_decoded,
                    "elapsed_s": round(result.elapsed_s, 2),
                    "warnings": result.warnings,
                    **counting_summary(document),
                    **({"faces": _faces_summary(document["faces"])} if "faces" in document else {}),
                }
            )
        except CrowdcountError as exc:
            click.echo(f"Error: {exc}", err=True)
            rows.append({"video": str(video), "ok": False, "error": str(exc), "exit_code": exc.exit_code})
        finally:
            if annotating is not None:
                annotating.unlink(missing_ok=True)  # renamed when the analysis succeeded

    if as_json:
        click.echo(json.dumps({"videos": rows}, indent=2))
    else:
        _print_table(rows)
    failed = [r for r in rows if not r["ok"]]
    if failed:
        raise SystemExit(failed[0]["exit_code"] if len(rows) == 1 else 1)


def plan_media(videos: list[Path], output: str | None, suffixes: tuple[str, ...], option: str) -> list[Path | None]:
    """One annotated video or plot per video: ``output`` itself when it has one of ``suffixes`` (one video),
    else a file per video in the folder ``output`` (with the first suffix)."""
    if output is not None and Path(output).suffix and not Path(output).is_dir():
        if len(videos) > 1:
            raise ConfigError(
                f"{option} {output!r} is one file but {len(videos)} videos were given",
                f"give a folder to {option} to get one file per video",
            )
        return [check_annotate_path(output, option, suffixes)]
    return plan_outputs(videos, output, suffixes[0], option)


def check_geometry(processors: list[Any], videos: list[Path]) -> None:
    """Fail before any analysis when a line or zone lies outside a video's frame (unreadable videos are left
    for the analysis to report)."""
    counting = [p for p in processors if isinstance(p, CountingProcessor)]
    if not counting:
        return
    for video in videos:
        try:
            info = probe_video(video)
        except VideoError:
            continue
        try:
            counting[0].check(info.width, info.height)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} of {video.name}", exc.hint) from None


def counting_summary(document: dict[str, Any]) -> dict[str, Any]:
    """Tracking, line and zone figures of a result document, for the printed summary."""
    out: dict[str, Any] = {}
    tracking = document.get("tracking")
    if tracking:
        out["tracking"] = {k: tracking[k] for k in ("unique_people", "max_occupancy", "mean_occupancy")}
    counting = document.get("counting")
    if counting:
        out["lines"] = [{k: line[k] for k in ("name", "in", "out")} for line in counting["lines"]]
        out["zones"] = [
            {k: zone[k] for k in ("name", "visitors", "max_occupancy", "mean_dwell_s", "max_dwell_s")}
            for zone in counting["zones"]
        ]
    contacts = document.get("contacts")
    if contacts:
        out["contacts"] = {k: contacts[k] for k in ("count", "people_in_contact", "distance_m", "min_seconds")}
    for key in ("annotate",):
        if document.get(key):
            out["annotated_video"] = document[key]["path"]
    return out


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="crowdcount summary")
    columns: list[tuple[str, JustifyMethod]] = [
        ("Video", "left"),
        ("Category", "left"),
        ("Frames analysed", "right"),
        ("Max", "right"),
        ("Mean", "right"),
        ("Peak at", "right"),
        ("Unique", "right"),
    ]
    for column, justify in columns:
        # names wrap (fold) in a narrow terminal instead of being cut to "vtest-15…"; the result files are
        # printed under the table, one a line, so that a path is never broken and can be copied
        overflow: OverflowMethod = "fold" if column == "Video" else "ellipsis"
        table.add_column(column, justify=justify, overflow=overflow)
    notes: list[str] = []
    names = _shown_names(rows)
    for row in rows:
        name = names[row["video"]]
        shown = escape(name)  # a file name may hold Rich markup: clip[/x].mp4
        if not row["ok"]:
            table.add_row(shown, "[red]failed[/red]", "-", "-", "-", "-", "-")
            notes.append(f"{name}: failed: {row['error']}")
            continue
        for i, (category, s) in enumerate(row["summary"].items()):
            tracked = row.get("tracking") if category == "Human" else None
            table.add_row(
                shown if i == 0 else "",
                category,
                str(s["frames_analyzed"]),
                str(s["max_count"]),
                f"{s['mean_count']:.2f}",
                _fmt_time(s["peak_timestamp"]),
                str(tracked["unique_people"]) if tracked else "-",
            )
        if row["result_file"]:
            notes.append(f"{name}: result file {row['result_file']}")
        if row.get("csv_file"):
            notes.append(f"{name}: counts CSV {row['csv_file']}")
        if row.get("plot_file"):
            notes.append(f"{name}: count plot {row['plot_file']}")
        for line in row.get("lines", []):
            notes.append(f"{name}: line {line['name']}: {line['in']} in, {line['out']} out")
        for zone in row.get("zones", []):
            notes.append(
                f"{name}: zone {zone['name']}: {zone['visitors']} people, at most {zone['max_occupancy']} at once, "
                f"dwell {zone['mean_dwell_s']:.1f} s on average ({zone['max_dwell_s']:.1f} s at most)"
            )
        if row.get("contacts"):
            c = row["contacts"]
            notes.append(
                f"{name}: {c['count']} close contacts (closer than {c['distance_m']:g} m for {c['min_seconds']:g} s "
                f"or more) between {c['people_in_contact']} people"
            )
        if row.get("annotated_video"):
            notes.append(f"{name}: annotated video {row['annotated_video']}")
    windows = {(r["count_smoothing"]["seconds"], r["count_smoothing"]["frames"]) for r in rows if r["ok"]}
    if windows:
        table.caption = "counts: " + "; ".join(
            f"running median over {seconds:g} s ({frames} analysed frames)" if frames > 1 else "per frame (raw)"
            for seconds, frames in sorted(windows)
        )
    console = Console(soft_wrap=True)
    console.print(table)
    for note in notes:
        console.print(note, highlight=False, markup=False)
    for row in rows:
        if row["ok"] and "faces" in row:
            f = row["faces"]
            seen = ", ".join(
                f"{p['name']} {_fmt_time(p['first_seen_ms'])}-{_fmt_time(p['last_seen_ms'])} "
                f"({p['seconds_on_screen']} s)"
                for p in f["people"]
            )
            click.echo(
                f"{names[row['video']]}: {f['distinct_people']} different people showed their face "
                f"({f['known_people']} known, {f['unknown_people']} unknown){': ' + seen if seen else ''}"
            )


def _shown_names(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Each video as the summary names it: its file name, or the path as given when another video has that name
    (``cam1/a.mp4`` and ``cam2/a.mp4``)."""
    counts: dict[str, int] = {}
    for row in rows:
        name = Path(row["video"]).name
        counts[name] = counts.get(name, 0) + 1
    return {
        row["video"]: row["video"] if counts[Path(row["video"]).name] > 1 else Path(row["video"]).name for row in rows
    }


def _faces_summary(section: dict[str, Any]) -> dict[str, Any]:
    """Who appeared, from the result file's ``faces`` section."""
    keys = ("distinct_people", "known_people", "unknown_people", "people", "unknown")
    return {key: section[key] for key in keys}
