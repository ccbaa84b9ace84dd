"""``crowdcount find PHOTO... --in VIDEO|DIR|RESULT...``: where else was this person? (appearance search)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from crowdcount.cli.aws_common import endpoint_option
from crowdcount.cli.common import FloatRange, config_option, get_config, remove_new_empty_folders_at_exit
from crowdcount.errors import ConfigError, CrowdcountError

logger = logging.getLogger(__name__)


def _sources(values: tuple[str, ...]) -> list[tuple[str, Path | str]]:
    """``("result", path)``, ``("video", path)`` and ``("s3", uri)`` to search: result files as given, folders
    expanded (their result files with appearance vectors, and their videos but those such a result file in the
    same folder covers), S3 locations as given."""
    from crowdcount.analyzer.files import find_videos
    from crowdcount.analyzer.search import SearchError

    out: list[tuple[str, Path | str]] = []
    without_vectors = 0
    for value in values:
        if value.startswith("s3://"):
            out.append(("s3", value))
            continue
        path = Path(value)
        if not path.exists():
            raise ConfigError(f"--in {value!r} does not exist", "give a video, a result JSON or a folder of them")
        if path.is_dir():
            covered = set()
            for result in sorted(path.rglob("*.json")):
                try:
                    document = json.loads(result.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                    continue
                if not isinstance(document, dict) or not isinstance(document.get("tracking"), dict):
                    continue  # not a result file
                if "embeddings" in document["tracking"]:
                    out.append(("result", result))
                    video = document.get("video")  # a damaged one is reported when it is searched
                    covered.add((result.parent, str(video.get("name") if isinstance(video, dict) else None)))
                else:  # its video, when it is in the folder, is analysed instead
                    logger.warning("%s holds no appearance vectors: skipped", result)
                    without_vectors += 1
            out.extend(("video", v) for v in find_videos([path]) if (v.parent, v.name) not in covered)
        elif path.suffix.lower() == ".json":
            out.append(("result", path))
        else:
            out.append(("video", path))
    out = _drop_covered_videos(out)
    if not out and without_vectors:
        raise SearchError(
            f"{', '.join(values)}: no result files with appearance vectors ({without_vectors} without)",
            "analyse the videos with 'crowdcount analyze --embeddings', or set the worker's tracking.embeddings",
        )
    if not out:
        raise ConfigError("no videos or result files found in " + ", ".join(values))
    return out


def _drop_covered_videos(sources: list[tuple[str, Path | str]]) -> list[tuple[str, Path | str]]:
    """The sources without repeats, and without the videos that a result file among them was written for (its
    tracks are searched from the result: analysing the video again would list each of them twice)."""
    covered: set[Path] = set()
    for kind, source in sources:
        if kind != "result":
            continue
        try:
            video = (json.loads(Path(source).read_text(encoding="utf-8")).get("video") or {}).get("path")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue  # reported when the result is read for the search
        if isinstance(video, str) and video:
            try:
                covered.add(Path(video).resolve())
            except (OSError, ValueError):  # not a path here (a NUL byte, a loop of links): it covers nothing
                continue
    kept: list[tuple[str, Path | str]] = []
    seen: set[tuple[str, str]] = set()
    for kind, source in sources:
        key = (kind, str(Path(source).resolve()) if kind != "s3" else str(source))
        if key in seen or (kind == "video" and Path(source).resolve() in covered):
            continue
        seen.add(key)
        kept.append((kind, source))
    return kept


@click.command("find")
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option(
    "--in",
    "sources",
    multiple=True,
    required=True,
    metavar="VIDEO|DIR|RESULT",
    help="Footage to search: videos, result JSONs (written with --embeddings), folders of them, or s3://BUCKET/PREFIX "
    "(result files of the worker); repeatable.",
)
@click.option("-o", "--output", type=click.Path(), default=None, help="Write the matches as JSON to this file.")
@click.option(
    "--threshold",
    type=FloatRange(-1.0, 1.0),
    default=None,
    help="Least cosine similarity of a match (default: the embedder's match threshold).",
)
@click.option("--annotate", type=click.Path(), default=None, help="Write a contact sheet (PNG) per match here.")
@click.option(
    "--frame-ratio",
    type=FloatRange(0, 1, min_open=True),
    default=None,
    help="Share of frames analysed in videos, in (0, 1] (default: the config's; 1 tracks best, costs most).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON instead of a table.")
@endpoint_option
@config_option
def find(
    photos: tuple[str, ...],
    sources: tuple[str, ...],
    output: str | None,
    threshold: float | None,
    annotate: str | None,
    frame_ratio: float | None,
    as_json: bool,
    endpoint_url: str | None,
    config_path: str | None,
) -> None:
    """Find the person shown in PHOTOS in videos and result files: their tracks, ranked by similarity.

    Each photo gives the largest person in it (or the whole photo when it is a tight crop of one person);
    several photos of one person are averaged. Videos are analysed (tracking with appearance); result files
    written by 'crowdcount analyze --embeddings' are searched without running the detector.
    """
    from crowdcount.analyzer import VideoAnalyzer, to_document
    from crowdcount.analyzer.files import check_writable
    from crowdcount.analyzer.pipeline import build_processors
    from crowdcount.analyzer.search import QueryVectors, contact_sheet, embed_photos, search_document
    from crowdcount.aws.resources import context_from_config
    from crowdcount.config import build_detectors
    from crowdcount.detectors import resolve_name
    from crowdcount.detectors.reid import build_person_embedder
    from crowdcount.eval.runner import load_document

    remove_new_empty_folders_at_exit(output and str(Path(output).parent), annotate)
    config = get_config(config_path, {"human_detection": {"frame_ratio": frame_ratio}})
    planned = _sources(sources)
    if output is not None and Path(output).is_dir():
        raise ConfigError(f"--output {output!r} is a folder", "give a file name, e.g. matches.json")
    # what would fail at the end fails now, before the search: where results go, how S3 is reached
    if output is not None:
        check_writable(Path(output).parent, "--output")
    if annotate is not None:
        check_writable(Path(annotate), "--annotate")
    s3_context = context_from_config(config, endpoint_url) if any(kind == "s3" for kind, _ in planned) else None
    block = config.human_detection
    human = next(([n, a] for n, a in block.detectors if resolve_name(n) == "human"), ["human", {}])
    (detector,) = build_detectors([human])
    embedder = build_person_embedder()
    threshold = embedder.match_threshold if threshold is None else threshold
    photos_found = embed_photos(photos, detector, embedder)
    # each result file is searched with the query embedded by the model of its vectors
    query = QueryVectors(
        photos_found, build=lambda name: embedder if name == embedder.name else build_person_embedder(name)
    )

    matches = []
    failures: list[CrowdcountError] = []
    analyzer = None
    for kind, path in planned:
        try:
            if kind == "s3":
                matches.extend(_search_s3(str(path), s3_context, query, threshold))
                continue
            if kind == "result":
                document = load_document(path)
            else:
                if analyzer is None:
                    tracking = {**config["tracking"], "enabled": True, "appearance": True, "embeddings": True}
                    tracking.update(lines=[], zones=[], calibration=None)
                    processors = build_processors(tracking, [detector])
                    analyzer = VideoAnalyzer.from_config(block, [detector], processors)
                document = to_document(analyzer.analyze(Path(path)))
            matches.extend(search_document(document, query, threshold, str(path)))
        except CrowdcountError as exc:
            click.echo(f"Error: {exc}", err=True)
            failures.append(exc)
    if failures:  # nothing partial is written
        raise SystemExit(failures[0].exit_code if len(planned) == 1 else 1)
    matches.sort(key=lambda m: -m.similarity)
    document_out: dict[str, Any] = {
        "query": [{"photo": p.path, "box": p.box, "whole_photo": p.whole_photo} for p in photos_found],
        "threshold": threshold,
        "embedder": embedder.name,
        "matches": [m.to_dict() for m in matches],
    }
    sheets: list[str] = []
    if annotate is not None:
        folder = Path(annotate)
        for rank, match in enumerate(matches, 1):
            name = f"{rank:02d}-{Path(match.video).stem}-track{match.track_id}.png"
            try:
                written = contact_sheet(match, folder / name)
            except OSError as exc:
                reason = exc.strerror if exc.strerror else str(exc)
                click.echo(f"Warning: no contact sheet for {match.video} track {match.track_id}: {reason}", err=True)
                continue
            if written is None:
                click.echo(
                    f"Warning: no contact sheet for {match.video} track {match.track_id}: video not found", err=True
                )
            else:
                sheets.append(str(written))
    if output is not None:
        from crowdcount.analyzer.result import write_json

        try:
            write_json(document_out, output)
        except OSError as exc:
            raise ConfigError(f"--output {output!r} cannot be written: {exc}") from None
    if as_json:
        click.echo(json.dumps(document_out, indent=2))
        return
    table = Table(title=f"crowdcount find: {len(matches)} matching tracks (cosine >= {threshold:g})")
    for column in ("Rank", "Video", "Track", "Similarity", "From", "To", "Frames"):
        table.add_column(column, justify="left" if column == "Video" else "right")
    for rank, match in enumerate(matches, 1):
        table.add_row(
            str(rank),
            match.video,
            str(match.track_id),
            f"{match.similarity:.3f}",
            f"{match.first_s:.1f} s",
            f"{match.last_s:.1f} s",
            str(len(match.frames)),
        )
    Console(soft_wrap=True).print(table)
    if output is not None:
        click.echo(f"matches written to {output}")
    for sheet in sheets:
        click.echo(f"contact sheet {sheet}")


def _search_s3(uri: str, context: Any, query: Any, threshold: float) -> list[Any]:
    """The matches in the result files under an S3 location (those without appearance vectors are skipped)."""
    from crowdcount.analyzer.search import SearchError, search_document
    from crowdcount.aws.results import result_documents

    s3 = context.client("s3")
    matches: list[Any] = []
    searched = 0
    for source, document in result_documents(s3, uri):
        if not isinstance(document["tracking"], dict) or "embeddings" not in document["tracking"]:
            logger.warning("%s holds no appearance vectors: skipped", source)
            continue
        searched += 1
        matches.extend(search_document(document, query, threshold, source))
    if not searched:
        raise SearchError(
            f"{uri}: no result files with appearance vectors",
            "set tracking.embeddings to true in the worker's config (or analyze --embeddings)",
        )
    return matches
