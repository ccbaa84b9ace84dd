"""``crowdcount eval``: how close the counts and boxes are to ground truth (MOTChallenge or dlib imglab XML)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from crowdcount.analyzer.pipeline import build_processors
from crowdcount.analyzer.scenery import SceneryModel
from crowdcount.cli.analyze import detector_specs
from crowdcount.cli.common import FloatRange, config_option, get_config, parse_key_values
from crowdcount.config import build_detectors
from crowdcount.detectors import DETECTORS, resolve_name
from crowdcount.errors import ConfigError, CrowdcountError
from crowdcount.eval import (
    EvalReport,
    IgnoreRegion,
    count_window,
    detect_images,
    detect_video,
    detections_from_document,
    evaluate_run,
    gt_format,
    load_document,
    parse_frames,
    parse_size,
    read_imglab,
    read_mot,
)
from crowdcount.eval.runner import SCORE_FLOOR, document_size, document_timing
from crowdcount.eval.tracking import evaluate_tracking, track_run_from_document, track_video

logger = logging.getLogger(__name__)


@click.command("eval")
@click.argument("source", required=False, type=click.Path())
@click.option(
    "--gt",
    "gt_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Ground truth: MOTChallenge gt.txt (for a video or result file) or dlib imglab XML (images).",
)
@click.option(
    "--manifest",
    "manifest_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Evaluate every clip a JSON manifest lists (video, ground truth, dev or held-out): one row per clip, "
    "and the mean of each split.",
)
@click.option(
    "--gt-scale",
    type=FloatRange(min=0, min_open=True),
    default=None,
    help="Multiply the ground-truth pixel coordinates by this.",
)
@click.option("--gt-size", default=None, metavar="WxH", help="Resolution the ground truth was annotated at.")
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="X0,Y0,X1,Y1",
    help="Ignore region in video pixels (repeatable): boxes whose bottom-centre lies inside count for nothing.",
)
@click.option("--frames", default=None, metavar="A-B", help="Evaluate only these annotated frames, e.g. 63-124.")
@click.option("--iou", type=FloatRange(0, 1, min_open=True), default=0.5, show_default=True, help="IoU match.")
@click.option(
    "--min-score",
    type=FloatRange(0, 1),
    default=None,
    help="Score threshold for counts, precision and recall (default: the detector's min_detection_score).",
)
@click.option("-d", "--detector", default=None, help="Detector to run or read: human (MOT default) or face (XML).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Frames per model call.")
@click.option(
    "--detector-arg",
    "detector_arg",
    multiple=True,
    metavar="DETECTOR.KEY=VALUE",
    help="Any detector argument, e.g. human.preset=fast (repeatable).",
)
@click.option(
    "--smooth",
    "smooth_s",
    type=FloatRange(0, 60),
    default=None,
    metavar="SECONDS",
    help="Count metrics on the running median of the counts over this many seconds, as analyze reports them "
    "(default: the configuration's human_detection.count_smoothing_s for a video, the file's own for a result "
    "JSON; 0: raw per-frame counts).",
)
@click.option(
    "--track",
    is_flag=True,
    help="Measure tracking instead: MOTA, IDF1, ID switches and the unique-people error (MOTChallenge ids).",
)
@click.option(
    "--frame-ratio",
    type=FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="With --track on a video: share of frames analysed (the others are not scored).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--per-frame", is_flag=True, help="Also list each frame's true and predicted count.")
@config_option
def eval_command(
    source: str | None,
    gt_path: str | None,
    manifest_path: str | None,
    gt_scale: float | None,
    gt_size: str | None,
    ignore: tuple[str, ...],
    frames: str | None,
    iou: float,
    min_score: float | None,
    detector: str | None,
    batch_size: int | None,
    detector_arg: tuple[str, ...],
    smooth_s: float | None,
    track: bool,
    frame_ratio: float,
    as_json: bool,
    per_frame: bool,
    config_path: str | None,
) -> None:
    """Measure counts and detections against ground truth.

    SOURCE is a video (the detector runs on the annotated frames only), or a result JSON written by
    `crowdcount analyze`; a MOTChallenge sequence folder is a video, and its gt/gt.txt (or gt.txt) the default
    --gt. With imglab XML ground truth, SOURCE is left out: the images it lists are used.
    Prints per-frame count MAE, RMSE and bias, precision / recall / F1 at the score threshold, and AP over
    every score (detectors run down to score 0.05 for it). With --manifest, every listed clip is evaluated the
    same way and printed as one row, with the mean of the development and the held-out clips.
    """
    given = click.get_current_context().get_parameter_source
    if not track and given("frame_ratio") is not click.core.ParameterSource.DEFAULT:
        raise ConfigError("--frame-ratio applies to --track on a video", "leave it out")
    if manifest_path is not None:
        if source is not None or gt_path is not None or track:
            raise ConfigError("--manifest lists its own videos and ground truth", "leave SOURCE, --gt and --track out")
        for option, value, key in (("--frames", frames, "frames"), ("--gt-scale", gt_scale, "gt_scale"),
                                   ("--ignore", ignore, "ignore")):  # fmt: skip
            if value:
                raise ConfigError(f"{option} does not apply to --manifest", f"each clip gives its own {key!r}")
        if gt_size is not None:
            raise ConfigError("--gt-size does not apply to --manifest", "give each clip its 'gt_scale'")
        if per_frame:
            raise ConfigError(
                "--per-frame does not apply to --manifest: it prints one row a clip",
                "evaluate the clip alone for its frames",
            )
        run_manifest(manifest_path, detector, batch_size, detector_arg, min_score, iou, smooth_s, config_path, as_json)
        return
    if gt_path is None and source is not None and Path(source).is_dir():
        # a MOTChallenge sequence folder holds its own (gt/gt.txt; some copies keep it beside seqinfo.ini)
        found = next((p for p in (Path(source) / "gt" / "gt.txt", Path(source) / "gt.txt") if p.is_file()), None)
        if found is not None:
            gt_path = str(found)
            click.echo(f"ground truth: {gt_path}", err=True)
    if gt_path is None:
        raise ConfigError("missing ground truth", "give --gt FILE (or --manifest FILE for several clips)")
    fmt = gt_format(gt_path)
    if fmt == "imglab":  # boxes in each image's own pixels; images, not frames
        if frames is not None:
            raise ConfigError(
                "--frames selects frames of a video, but imglab XML ground truth lists images",
                "leave --frames out, or list fewer images in the XML file",
            )
        for option, value in (("--gt-scale", gt_scale), ("--gt-size", gt_size)):
            if value is not None:
                raise ConfigError(
                    f"{option} does not apply to imglab XML ground truth: its boxes are in each image's own pixels",
                    f"leave {option} out",
                )
    name = resolve_name(detector or ("face" if fmt == "imglab" else "human"))
    category = DETECTORS[name].category
    regions = [IgnoreRegion.parse(r) for r in ignore]
    is_document = source is not None and Path(source).suffix.lower() == ".json"
    if is_document and given("frame_ratio") is not click.core.ParameterSource.DEFAULT:
        raise ConfigError(
            "--frame-ratio applies to --track on a video: a result file was analysed at its own frame_ratio",
            "leave it out",
        )

    config = get_config(config_path)
    window = 1

    def build() -> Any:
        return build_one(config, name, batch_size, detector_arg)

    if track:
        if fmt != "mot" or source is None:
            raise ConfigError("--track needs MOTChallenge ground truth and a SOURCE (a video or its result JSON)")
        run_tracking(
            source,
            gt_path,
            is_document,
            build,
            config_path,
            gt_scale,
            gt_size,
            frames,
            iou,
            regions,
            frame_ratio,
            category,
            as_json,
        )
        return
    if fmt == "imglab":
        if source is not None:
            raise ConfigError("imglab XML ground truth lists its own images: leave SOURCE out")
        if smooth_s:
            raise ConfigError("--smooth applies to videos: images have no time to smooth over", "leave it out")
        gt = read_imglab(gt_path)
        keys: list[Any] = list(gt.frames)
        run = detect_images([str(k) for k in keys], build(), SCORE_FLOOR)
    else:
        if source is None:
            raise ConfigError("MOTChallenge ground truth needs a SOURCE: the video, or its result JSON")
        annotation_size = parse_size(gt_size) if gt_size else None
        if is_document:
            document = load_document(source)
            run = detections_from_document(document, category, source)
            fps, ratio, recorded = document_timing(document, source)
            seconds = recorded if smooth_s is None else smooth_s
            gt = read_mot(gt_path, (run.width, run.height), gt_scale, annotation_size, document_frames(document))
            keys = parse_frames(frames, [k for k in gt.frames if isinstance(k, int)])
            window = count_window(seconds, fps, ratio, run, keys)
        else:
            from crowdcount.analyzer import probe_video

            info = probe_video(source)
            seconds = config.human_detection.count_smoothing_s if smooth_s is None else smooth_s
            gt = read_mot(gt_path, (info.width, info.height), gt_scale, annotation_size, info.frame_count)
            keys = parse_frames(frames, [k for k in gt.frames if isinstance(k, int)])
            scenery = SceneryModel() if config.tracking.scenery else None
            run = detect_video(source, build(), keys, SCORE_FLOOR, scenery)
            window = count_window(seconds, info.fps, 1.0, run, keys)
    report = evaluate_run(run, gt, keys, min_score, iou, regions, window)
    for warning in report.extra.get("warnings", []):
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(per_frame=per_frame), indent=2))
    else:
        print_report(report, per_frame)


def document_frames(document: dict[str, Any]) -> int:
    """The frames a result file's video has: the more of those decoded and those its container said (a truncated
    video decodes fewer than it has, a raw stream's count is an estimate); 0 when it says neither."""
    video = document.get("video")
    if not isinstance(video, dict):
        return 0
    counts = [video.get(key) for key in ("frames_decoded", "frame_count")]
    return max(
        [
            int(v)
            for v in counts
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        ],
        default=0,
    )


def build_one(config: Any, name: str, batch_size: int | None, detector_arg: tuple[str, ...]) -> Any:
    """The detector ``name`` as the configuration and the command line describe it."""
    specs = detector_specs(
        config.human_detection.detectors,
        (name,),
        None,
        batch_size,
        parse_key_values(detector_arg, "--detector-arg"),
    )
    return build_detectors(specs)[0]


MANIFEST_COLUMNS = ("frames", "mean_gt_count", "count_mae", "count_bias", "precision", "recall", "ap", "fps")


def run_manifest(
    manifest_path: str,
    detector: str | None,
    batch_size: int | None,
    detector_arg: tuple[str, ...],
    min_score: float | None,
    iou: float,
    smooth_s: float | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """``eval --manifest``: run the detector on every clip of a manifest, as ``analyze`` runs it."""
    from crowdcount.analyzer import probe_video
    from crowdcount.eval.manifest import clip_keys, evaluate_manifest, load_manifest, mean_row, read_clip_gt

    clips = load_manifest(manifest_path)
    config = get_config(config_path)
    prepared: dict[str, tuple[Any, Any, list[int]]] = {}
    for clip in clips:  # every clip's video and ground truth are checked before the detector runs on any
        try:
            info = probe_video(clip.video)
            gt = read_clip_gt(clip, (info.width, info.height), info.frame_count)
            prepared[clip.name] = (info, gt, clip_keys(clip, gt))
        except CrowdcountError as exc:  # the clips' files are often all named gt.txt: say which clip
            raise type(exc)(f"manifest clip {clip.name!r}: {exc.message}", exc.hint) from None
    built = build_one(config, resolve_name(detector or "human"), batch_size, detector_arg)
    seconds = config.human_detection.count_smoothing_s if smooth_s is None else smooth_s

    def evaluate_clip(clip: Any) -> dict[str, Any]:
        info, gt, keys = prepared[clip.name]
        scenery = SceneryModel() if config.tracking.scenery else None
        run = detect_video(clip.video, built, keys, SCORE_FLOOR, scenery)
        report = evaluate_run(
            run, gt, keys, min_score, iou, list(clip.ignore), count_window(seconds, info.fps, 1.0, run, keys)
        )
        for warning in report.extra.get("warnings", []):
            click.echo(f"Warning: {clip.name}: {warning}", err=True)
        values = report.to_dict(per_frame=False)  # undefined metrics are None
        return {k: values.get(k) for k in MANIFEST_COLUMNS}

    rows = evaluate_manifest(clips, evaluate_clip)
    means = {split: _finite(mean_row(found, MANIFEST_COLUMNS[1:])) for split, found in rows.items()}
    if as_json:
        clean = {split: {"clips": found, "mean": means[split]} for split, found in rows.items()}
        click.echo(json.dumps({"detector": built.describe(), **clean}, indent=2, default=str))
        return
    table = Table(
        title=f"crowdcount eval: {Path(manifest_path).name} ({built.describe()['arguments'].get('preset', '')})"
    )
    for column in ("clip", "split", "frames", "people", "MAE", "bias", "prec.", "recall", "AP50", "fps"):
        table.add_column(column, justify="left" if column in ("clip", "split") else "right", overflow="fold")
    for split, found in rows.items():
        for row in [*found, {"clip": "mean", "split": split, **means[split]}]:
            table.add_row(
                str(row["clip"]),
                split,
                "" if row["clip"] == "mean" else str(row["frames"]),
                _fmt(row["mean_gt_count"], 1),
                _fmt(row["count_mae"], 2),
                "-" if row["count_bias"] is None else f"{row['count_bias']:+.2f}",
                _fmt(row["precision"]),
                _fmt(row["recall"]),
                _fmt(row["ap"]),
                _fmt(row["fps"], 1),
                end_section=row["clip"] == "mean",
            )
    Console(soft_wrap=True).print(table)
    click.echo("people: annotated per frame; MAE and bias: count error per frame (> 0 overcounts); prec. and recall at "
               "the threshold; AP50 over every score; fps: decoding + detection")  # fmt: skip


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ``nan`` as ``None`` and floats rounded (as :meth:`EvalReport.to_dict` gives a clip's)."""
    return {k: (None if math.isnan(v) else round(v, 4)) if isinstance(v, float) else v for k, v in row.items()}


def run_tracking(
    source: str,
    gt_path: str,
    is_document: bool,
    build: Any,
    config_path: str | None,
    gt_scale: float | None,
    gt_size: str | None,
    frames: str | None,
    iou: float,
    regions: list[IgnoreRegion],
    frame_ratio: float,
    category: str,
    as_json: bool,
) -> None:
    """``eval --track``: run the tracker (or read the tracks of a result file) and print the MOT metrics."""
    annotation_size = parse_size(gt_size) if gt_size else None
    if is_document:
        document = load_document(source)
        run = track_run_from_document(document, category, source)
        gt = read_mot(gt_path, document_size(document, source), gt_scale, annotation_size, document_frames(document))
        keys = parse_frames(frames, [k for k in gt.frames if isinstance(k, int)])
    else:
        from crowdcount.analyzer import probe_video

        info = probe_video(source)
        gt = read_mot(gt_path, (info.width, info.height), gt_scale, annotation_size, info.frame_count)
        keys = parse_frames(frames, [k for k in gt.frames if isinstance(k, int)])
        detector = build()
        block = {  # the tracker, after the scenery filter when the configuration runs it (as analyze does)
            **get_config(config_path)["tracking"],
            **{"enabled": True, "lines": [], "zones": [], "calibration": None},
        }
        processors = build_processors(block, [detector], category=category)
        run = track_video(source, detector, processors, max(keys), frame_ratio)
    report = evaluate_tracking(run, gt, keys, iou, regions)
    for warning in gt.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"crowdcount eval --track: {Path(source).name}, frame ratio {report['frame_ratio']:g}")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    table.add_column("Notes")
    for metric, value, note in [
        ("frames evaluated", str(report["frames_evaluated"]), f"ground truth {Path(gt_path).name}"),
        ("MOTA", _fmt(report["MOTA"]), f"{report['FP']} FP, {report['FN']} FN, IoU >= {iou:g}"),
        ("IDF1", _fmt(report["IDF1"]), f"IDP {_fmt(report['IDP'])}, IDR {_fmt(report['IDR'])}"),
        ("ID switches", str(report["ID_switches"]), f"{report['fragmentations']} fragmentations"),
        ("MOTP", _fmt(report["MOTP"]), "mean IoU of the matches"),
        ("unique people", str(report["unique_people"]), f"{report['gt_people']} in the ground truth"),
        ("unique-people error", f"{report['unique_people_error']:+d}", "> 0: counts people twice"),
        (
            "occupancy MAE",
            _fmt(report["occupancy_mae"]),
            f"tracked people per frame; bias {report['occupancy_bias']:+.3f}",
        ),
    ]:
        table.add_row(metric, value, note)
    if report.get("fps"):
        table.add_row("speed", f"{report['fps']:.1f}", "analysed frames per second, decoding + detection + tracking")
    Console(soft_wrap=True).print(table)


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_report(report: EvalReport, per_frame: bool = False) -> None:
    """A rich table of one evaluation."""
    extra = report.extra
    unit = extra.get("unit", "frame")
    noun = "faces" if extra.get("category") == "Face" else "people"
    smoothing = f"; median of {extra['count_smoothing']} {unit}s" if extra.get("count_smoothing", 1) > 1 else "; raw"
    iou = f"{report.iou_threshold:g}"
    table = Table(title=f"crowdcount eval: {extra.get('category', '')} in {Path(str(extra.get('source'))).name}")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    table.add_column("Notes")
    rows = [
        (f"{unit}s evaluated", str(report.frames), f"ground truth {Path(str(extra.get('ground_truth'))).name}"),
        (f"{noun} annotated", str(report.gt_total), f"{_fmt(report.mean_gt_count, 2)} per {unit}"),
        ("count MAE", _fmt(report.count_mae), f"{noun} per {unit}; mean count {_fmt(report.mean_count, 2)}{smoothing}"),
        ("count RMSE", _fmt(report.count_rmse), ""),
        ("count bias", f"{report.count_bias:+.3f}" if not math.isnan(report.count_bias) else "-", "> 0: overcounts"),
        ("precision", _fmt(report.precision), f"{report.tp} TP, {report.fp} FP at score >= {report.threshold:g}"),
        ("recall", _fmt(report.recall), f"{report.fn} FN, IoU >= {iou}"),
        ("F1", _fmt(report.f1), ""),
        (f"AP{round(report.iou_threshold * 100)}", _fmt(report.ap), f"scores >= {extra.get('score_floor', 0):g}"),
    ]
    if extra.get("fps"):
        rows.append(("speed", f"{extra['fps']:.1f}", f"{unit}s per second, decoding + detection"))
    if extra.get("gt_scale_reason") not in (None, "none"):
        rows.append(("ground-truth scale", f"{extra['gt_scale']:g}", str(extra["gt_scale_reason"])))
    for metric, value, note in rows:
        table.add_row(metric, value, note)
    console = Console(soft_wrap=True)
    console.print(table)
    if per_frame:
        frames = Table(title="per-frame counts")
        for column in (unit, "true", "predicted"):
            frames.add_column(column, justify="right")
        for row in report.per_frame:
            frames.add_row(str(row["frame"]), str(row["gt"]), f"{row['count']:g}")
        console.print(frames)
