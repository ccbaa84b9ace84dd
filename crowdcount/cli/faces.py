"""``crowdcount faces``: enrol people in a face gallery, list, remove and forget them."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np

from crowdcount.aws.gallery import SCHEME, open_gallery
from crowdcount.aws.resources import context_from_config
from crowdcount.cli.aws_common import endpoint_option
from crowdcount.cli.common import config_option, get_config
from crowdcount.config import Config
from crowdcount.errors import ConfigError, CrowdcountError, GalleryError
from crowdcount.faces.gallery import Gallery, LocalGallery

logger = logging.getLogger(__name__)

DEFAULT_GALLERY = "faces-gallery.json"


def _gallery(config: Config, location: str | None, endpoint_url: str | None) -> Gallery:
    location = location or config.faces.gallery or DEFAULT_GALLERY
    ctx = context_from_config(config, endpoint_url) if location.startswith(SCHEME) else None
    return open_gallery(location, ctx, config.dynamodb.region)


def gallery_option(func: Any) -> Any:
    return click.option(
        "-g",
        "--gallery",
        "location",
        default=None,
        metavar="FILE|dynamodb://TABLE",
        help=f"The gallery: a JSON file or a DynamoDB table (default: the config's faces.gallery, "
        f"else {DEFAULT_GALLERY}).",
    )(func)


def _details(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--detail {pair!r} is not KEY=VALUE", "e.g. --detail student_id=1234")
        out[key.strip()] = value
    return out


@click.group()
def faces() -> None:
    """Enrol people in a face gallery (file or DynamoDB table), list, remove and forget them."""


@faces.command()
@click.argument("items", nargs=-1, required=True, metavar="NAME PHOTO... | FOLDER")
@gallery_option
@click.option("--detail", "detail", multiple=True, metavar="KEY=VALUE", help="A detail to record (repeatable).")
@click.option("--update", is_flag=True, help="Add photos and details to a person already enrolled.")
@click.option("--keep-photos", is_flag=True, help="Also keep copies of the photos (local galleries only).")
@click.option("--embedder", default=None, help="dlib (default, most accurate), mobileface (fast), or a model path.")
@click.option("--json", "as_json", is_flag=True, help="Print what was enrolled as JSON.")
@endpoint_option
@config_option
def enroll(
    items: tuple[str, ...],
    location: str | None,
    detail: tuple[str, ...],
    update: bool,
    keep_photos: bool,
    embedder: str | None,
    as_json: bool,
    endpoint_url: str | None,
    config_path: str | None,
) -> None:
    """Enrol NAME from PHOTOs (files or folders of photos, one face each), or everyone in FOLDER, whose
    subfolders NAME/ hold each person's photos. Nothing is enrolled when any photo has no face or several."""
    from crowdcount.detectors import build_detector
    from crowdcount.detectors.embedders import build_embedder
    from crowdcount.faces.enroll import Enroller, expand_photos, people_folder
    from crowdcount.faces.gallery import check_name

    config = get_config(config_path)
    details = _details(detail)
    if len(items) == 1:
        folder = Path(items[0])
        if not folder.is_dir():
            raise ConfigError(
                f"{items[0]!r} is not a folder of NAME/ subfolders",
                "give NAME PHOTO... to enrol one person, or a folder holding NAME/*.jpg",
            )
        plan = people_folder(folder)
        if not plan:
            raise ConfigError(f"{folder} holds no NAME/ subfolders with photos", "e.g. people/alice/1.jpg")
        if details:
            raise ConfigError("--detail applies to one person", "enrol with NAME PHOTO... to give details")
    else:
        if Path(items[0]).is_file():  # 'faces enroll alice.jpg bob.jpg' would enrol a person named alice.jpg
            raise ConfigError(
                f"the name {items[0]!r} is a file: was NAME left out?",
                "give NAME PHOTO..., e.g. faces enroll alice alice.jpg",
            )
        plan = {items[0]: expand_photos(items[1:])}
    gallery = _gallery(config, location, endpoint_url)
    if keep_photos and not isinstance(gallery, LocalGallery):
        raise ConfigError("--keep-photos works with local gallery files only", "photos are never stored in DynamoDB")
    model = build_embedder(embedder or config.faces.embedder)
    info = {"name": model.name, "dim": model.dim}
    face_args = dict(next((a for n, a in config.human_detection.detectors if n in ("face", "FaceDetector")), {}))
    face_args["min_detection_score"] = max(0.9, float(face_args.get("min_detection_score", 0.9)))
    enroller = Enroller(build_detector("face", face_args), model)
    model.load()
    info["dim"] = model.dim
    gallery.check_embedder(info)
    labels: dict[str, str] = {}  # labels, never paths; two folders of one label would lose one's photos
    for given in plan:
        label = check_name(given)
        if label in labels:
            raise ConfigError(
                f"the folders {labels[label]!r} and {given!r} both name {label!r}",
                "rename one, or put all of that person's photos in one folder",
            )
        labels[label] = given
    plan = {label: plan[given] for label, given in labels.items()}
    for name in plan:  # every check before anything is written
        existing = gallery.get(name)
        if existing is not None and not update:
            raise GalleryError(
                f"{name!r} is already enrolled in {gallery.location}",
                "add --update to add these photos and details to that person, or choose another name",
            )
    found = {name: enroller.faces_of(photos) for name, photos in plan.items()}
    report: list[dict[str, Any]] = []
    for name, photo_faces in found.items():
        kept: list[str] = []
        try:
            if keep_photos and isinstance(gallery, LocalGallery):  # checked above: --keep-photos needs a local file
                kept.extend(gallery.keep_photo(name, f.path) for f in photo_faces)
            person = gallery.enroll(
                name,
                np.array([f.embedding for f in photo_faces], np.float32),
                info,
                details=details,
                sources=[f.path.name for f in photo_faces],
                photos=kept,
                update=update,
            )
        except CrowdcountError as exc:  # not enrolled: no copies of the photos left behind either
            for copy in kept:
                Path(copy).unlink(missing_ok=True)
            for folder in {Path(copy).parent for copy in kept}:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # when empty
            if report:  # the people before this one are in the gallery: say so, and how to finish
                done = ", ".join(repr(row["name"]) for row in report)
                exc.message = f"{exc.message} (enrolled before it: {done}; {name!r} and the people after it not)"
                exc.hint = "fix the cause and run the same command again with --update"
            raise
        report.append({"name": person.name, "photos": len(photo_faces), "embeddings": len(person.embeddings)})
    if as_json:
        click.echo(json.dumps({"gallery": gallery.location, "enrolled": report}, indent=2))
        return
    for row in report:
        click.echo(f"enrolled {row['name']}: {row['photos']} photo(s), {row['embeddings']} embedding(s) in total")
    click.echo(f"gallery: {gallery.location} ({len(gallery.names())} people, embedder {model.name})")


@faces.command(name="list")
@gallery_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@endpoint_option
@config_option
def list_people(location: str | None, as_json: bool, endpoint_url: str | None, config_path: str | None) -> None:
    """List the people enrolled, with their details."""
    gallery = _gallery(get_config(config_path), location, endpoint_url)
    people = gallery.people()
    if as_json:
        rows = [
            {
                "name": p.name,
                "details": p.details,
                "embeddings": len(p.embeddings),
                "photos_kept": len(p.photos),
                "enrolled_at": p.enrolled_at,
            }
            for p in people
        ]
        click.echo(json.dumps({"gallery": gallery.location, "embedder": gallery.embedder(), "people": rows}, indent=2))
        return
    if not people:
        click.echo(f"{gallery.location}: no one enrolled")
        return
    for p in people:
        details = ", ".join(f"{k}={v}" for k, v in sorted(p.details.items()))
        photos = f", {len(p.photos)} photo(s) kept" if p.photos else ""
        click.echo("\t".join([p.name, f"{len(p.embeddings)} embedding(s){photos}", *([details] if details else [])]))
    click.echo(f"{len(people)} people in {gallery.location}")


@faces.command()
@click.argument("name")
@gallery_option
@endpoint_option
@config_option
def remove(name: str, location: str | None, endpoint_url: str | None, config_path: str | None) -> None:
    """Take NAME out of the gallery (embeddings and details). Kept photos stay: use `forget` to erase them."""
    gallery = _gallery(get_config(config_path), location, endpoint_url)
    person = gallery.remove(name)
    click.echo(f"removed {person.name} from {gallery.location}")
    if isinstance(gallery, LocalGallery) and gallery.person_dir(person.name).is_dir():
        click.echo(f"kept photos remain in {gallery.person_dir(person.name)} (`faces forget` erases them)", err=True)


@faces.command()
@click.argument("name")
@gallery_option
@click.option(
    "--results",
    multiple=True,
    metavar="PATH|s3://BUCKET/PREFIX",
    help="Also replace NAME by 'forgotten' in the JSON result files there (a file, a folder searched "
    "recursively, or an S3 prefix; repeatable).",
)
@endpoint_option
@config_option
def forget(
    name: str, location: str | None, results: tuple[str, ...], endpoint_url: str | None, config_path: str | None
) -> None:
    """Erase every trace of NAME the gallery holds: embeddings, details and kept photos (also after `remove`),
    and with --results the name in result files already written."""
    from crowdcount.faces.gallery import check_name

    config = get_config(config_path)
    for where in results:  # every check before anything is erased
        if "://" in where and not where.startswith("s3://"):
            raise ConfigError(f"--results {where!r} is not supported", "give a file, a folder or s3://BUCKET/PREFIX")
        if "://" not in where and not Path(where).exists():
            raise ConfigError(f"--results {where!r}: no such file or folder", "give a result file or a folder")
    gallery = _gallery(config, location, endpoint_url)
    try:
        gone = gallery.forget(name)  # refuses a name that is not a label, unless a record has exactly that name
    except GalleryError:
        if not results:
            raise
        name = check_name(name)
        click.echo(f"{name} holds nothing in {gallery.location}; redacting the result files only", err=True)
    else:
        name = gone.name
        if gone.record:
            photos = f" and {gone.photos} kept photo(s)" if gone.photos else ""
            click.echo(f"forgot {gone.name}: embeddings, details{photos} deleted from {gallery.location}")
        else:
            click.echo(
                f"forgot {gone.name}: {gone.photos} kept photo(s) deleted from {gallery.location} "
                "(its record was removed before)"
            )
        if gone.left:
            click.echo(
                f"{len(gone.left)} photo(s) its record listed lie outside the gallery and were left in place "
                f"(delete them yourself if they are copies): {', '.join(gone.left)}",
                err=True,
            )
    left: list[str] = []
    for where in results:
        if where.startswith("s3://"):
            from crowdcount.aws.gallery import redact_s3

            ctx = context_from_config(config, endpoint_url)
            report = redact_s3(ctx.client("s3", config.aws_region), where, name, ctx.endpoint_url, check=False)
        else:
            from crowdcount.faces.redact import redact_files

            report = redact_files([where], name, check=False)
        click.echo(
            f"redacted {name} in {len(report.changed)} of {report.scanned} result file(s) in {where} "
            f"({report.replaced} mention(s) now 'forgotten')"
        )
        left.extend(report.left)
    if left:  # the others are done; these still may name the person
        raise CrowdcountError(
            f"{name} may still be named in {len(left)} file(s) that could not be redacted (unreadable, not "
            f"writable, or not valid JSON): {', '.join(left)}",
            "fix or delete them, then run forget again",
        )
