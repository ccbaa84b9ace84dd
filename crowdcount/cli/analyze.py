"""``crowdcount analyze``: count people and faces in video files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from crowdcount.analyzer import VideoAnalyzer, to_document, write_csv, write_json
from crowdcount.analyzer.files import find_videos, plan_outputs
from crowdcount.aws.gallery import face_processors
from crowdcount.cli.common import config_option, get_config, parse_key_values
from crowdcount.config import build_detectors
from crowdcount.detectors import resolve_name
from crowdcount.errors import ConfigError, CrowdcountError, VideoError

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = "crowdcount_results"


def detector_specs(
    configured: list[list[Any]],
    names: tuple[str, ...],
    min_score: float | None,
    batch_size: int | None,
    detector_args: dict[str, dict[str, Any]],
) -> list[list[Any]]:
    """The ``[name, arguments]`` list to build: the chosen names (with any arguments the config gives
    them) or the configured list, then the CLI's overrides."""
    by_name = {resolve_name(name): dict(args) for name, args in configured}
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
                args.update(extra)
    return specs


def _fmt_time(ms: float | None) -> str:
    if ms is None:
        return "-"
    seconds = ms / 1000.0
    return f"{int(seconds // 60)}:{seconds % 60:05.2f}"


@click.command()
@click.argument("videos", nargs=-1, required=True, type=click.Path())
@click.option("-d", "--detector", "detectors", multiple=True, help="Detector to run (repeatable): human, face.")
@click.option(
    "--frame-ratio",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Share of frames to analyse, in (0, 1].",
)
@click.option(
    "--smooth",
    "smooth_s",
    type=click.FloatRange(0, 60),
    default=None,
    metavar="SECONDS",
    help="Report counts as a running median over this many seconds (0: raw per-frame counts; default 0.5).",
)
@click.option("--min-score", type=click.FloatRange(0, 1), default=None, help="Minimum detection score.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Frames per model call.")
@click.option(
    "--detector-arg",
    "detector_arg",
    multiple=True,
    metavar="DETECTOR.KEY=VALUE",
    help="Any detector argument, e.g. human.model_path=/models/frozen_inference_graph.pb (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Result JSON: a file (one video) or a folder (one file per video).",
)
@click.option("--csv", "csv_path", type=click.Path(), default=None, help="Per-frame counts as CSV: a file or folder.")
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
    smooth_s: float | None,
    min_score: float | None,
    batch_size: int | None,
    detector_arg: tuple[str, ...],
    output: str,
    csv_path: str | None,
    progress: bool | None,
    as_json: bool,
    identify: str | None,
    config_path: str | None,
) -> None:
    """Count people and faces in VIDEOS (files or folders of videos).

    Writes one result JSON per video and prints a summary. One bad video is reported and the others
    still run; the exit status is 0 only when every video succeeded.
    """
    config = get_config(config_path, {"human_detection": {"frame_ratio": frame_ratio, "count_smoothing_s": smooth_s}})
    block = config["human_detection"]
    specs = detector_specs(
        block["detectors"], detectors, min_score, batch_size, parse_key_values(detector_arg, "--detector-arg")
    )
    paths = find_videos(videos)
    if not paths:
        raise ConfigError("no videos found in " + ", ".join(videos), "give video files or folders holding videos")
    json_paths = plan_outputs(paths, output, ".json", "--output")
    csv_paths = plan_outputs(paths, csv_path, ".csv", "--csv")
    processors = face_processors(config, gallery=identify)
    if processors and "face" not in {name for name, _ in specs}:  # identification needs the face detector
        specs.append(["face", dict(next((a for n, a in block["detectors"] if resolve_name(n) == "face"), {}))])
    analyzer = VideoAnalyzer.from_config(block, build_detectors(specs), processors)
    analyzer.load()  # a model that cannot load is one error, before any video

    rows: list[dict[str, Any]] = []
    for video, json_path, csv_out in zip(paths, json_paths, csv_paths, strict=True):
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
            document = to_document(result)
            try:
                if json_path is not None:
                    write_json(document, json_path)
                if csv_out is not None:
                    write_csv(document, csv_out)
            except OSError as exc:
                raise VideoError(f"{video}: results cannot be written: {exc}") from None
            rows.append(
                {
                    "video": str(video),
                    "ok": True,
                    "result_file": str(json_path) if json_path else None,
                    "csv_file": str(csv_out) if csv_out else None,
                    "summary": document["summary"],
                    "frames_decoded": result.frames_decoded,
                    "elapsed_s": round(result.elapsed_s, 2),
                    "warnings": result.warnings,
                    **({"faces": _faces_summary(document["faces"])} if "faces" in document else {}),
                }
            )
        except CrowdcountError as exc:
            click.echo(f"Error: {exc}", err=True)
            rows.append({"video": str(video), "ok": False, "error": str(exc), "exit_code": exc.exit_code})

    if as_json:
        click.echo(json.dumps({"videos": rows}, indent=2))
    else:
        _print_table(rows)
    failed = [r for r in rows if not r["ok"]]
    if failed:
        raise SystemExit(failed[0]["exit_code"] if len(rows) == 1 else 1)


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="crowdcount summary")
    for column, justify in [
        ("Video", "left"),
        ("Category", "left"),
        ("Frames analysed", "right"),
        ("Max", "right"),
        ("Mean", "right"),
        ("Peak at", "right"),
        ("Result file", "left"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        name = Path(row["video"]).name
        if not row["ok"]:
            table.add_row(name, "[red]failed[/red]", "-", "-", "-", "-", row["error"])
            continue
        for i, (category, s) in enumerate(row["summary"].items()):
            table.add_row(
                name if i == 0 else "",
                category,
                str(s["frames_analyzed"]),
                str(s["max_count"]),
                f"{s['mean_count']:.2f}",
                _fmt_time(s["peak_timestamp"]),
                (row["result_file"] or "-") if i == 0 else "",
            )
    Console(soft_wrap=True).print(table)
    for row in rows:
        if row["ok"] and "faces" in row:
            f = row["faces"]
            seen = ", ".join(
                f"{p['name']} {_fmt_time(p['first_seen_ms'])}-{_fmt_time(p['last_seen_ms'])} "
                f"({p['seconds_on_screen']} s)"
                for p in f["people"]
            )
            click.echo(
                f"{Path(row['video']).name}: {f['distinct_people']} different people showed their face "
                f"({f['known_people']} known, {f['unknown_people']} unknown){': ' + seen if seen else ''}"
            )


def _faces_summary(section: dict[str, Any]) -> dict[str, Any]:
    """Who appeared, from the result file's ``faces`` section."""
    keys = ("distinct_people", "known_people", "unknown_people", "people", "unknown")
    return {key: section[key] for key in keys}
