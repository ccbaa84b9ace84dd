"""Galleries are safe to keep: names are labels never paths, nothing outside the gallery is written or deleted,
`forget` erases everything (also after `remove`) and result files, and running identifiers notice changes."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from crowdcount.analyzer import VideoAnalyzer
from crowdcount.aws.gallery import DynamoDBGallery
from crowdcount.aws.jobs import submit_video
from crowdcount.aws.resources import Resources, provision
from crowdcount.aws.session import make_context
from crowdcount.aws.status import StatusStore
from crowdcount.aws.worker import Worker, WorkerClients, WorkerSettings
from crowdcount.config import load_config
from crowdcount.detectors.embedders import normalize
from crowdcount.errors import GalleryError
from crowdcount.faces import FaceIdentifier, LocalGallery
from crowdcount.faces.gallery import check_name
from crowdcount.faces.redact import FORGOTTEN, redact_document, redact_files

from .support import COLOURS, ColourEmbedder, write_people_video, write_photo
from conftest import FaceSquareDetector
from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_faces")
COLOUR = {"name": "colour", "dim": 3}
REGION = "us-east-1"
HINT = "a name is a label: printable characters without / or \\, not . or .., at most 100 characters"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (what must not change)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def vector(name: str) -> np.ndarray:
    return normalize((np.array(COLOURS[name], np.float32) - 128).reshape(1, 3))


BAD_NAMES = [
    ("..", "'..': . and .. are folders, not names"),
    (".", "'.': . and .. are folders, not names"),
    (" .. ", "' .. ': . and .. are folders, not names"),
    ("a/b", "'a/b': holds a path separator"),
    ("../x", "'../x': holds a path separator"),
    ("/etc", "'/etc': holds a path separator"),
    ("a\\b", "'a\\\\b': holds a path separator"),
    ("bob\nalice", "'bob\\nalice': holds a control character"),
    ("tab\tname", "'tab\\tname': holds a control character"),
    ("nul\x00", "'nul\\x00': holds a control character"),
    ("esc\x1b[31m", "'esc\\x1b[31m': holds a control character"),
    ("", "'': empty"),
    ("   ", "'   ': empty"),
    ("x" * 101, "'xxxxxxxxxxxxxxxxxxxx'...: 101 characters"),
]


@pytest.mark.parametrize(("name", "why"), BAD_NAMES)
def test_every_command_refuses_a_name_that_is_not_a_label(tmp_path: Path, name: str, why: str) -> None:
    work = tmp_path / "work"
    (work / "galleries").mkdir(parents=True)
    gallery = work / "galleries" / "g.json"
    photo = write_photo(work / "p.png", [COLOURS["alice"]])
    assert (
        run("faces", "enroll", "alice", str(photo), "-g", str(gallery), "--embedder", "colour", "--keep-photos")[0] == 0
    )
    before = snapshot(tmp_path)
    commands = [
        ["enroll", name, str(photo), "--embedder", "colour", "--keep-photos"],
        ["enroll", name, str(photo), "--embedder", "colour", "--update"],
        ["remove", name],
        ["forget", name],
        ["forget", name, "--results", str(work)],
    ]
    for command in commands:
        code, out, err = run("faces", *command, "-g", str(gallery))
        assert (code, out, err) == (2, "", f"Error: invalid name {why} ({HINT})\n"), command
    assert snapshot(tmp_path) == before  # nothing written, nothing deleted, nowhere
    assert LocalGallery(gallery).names() == ["alice"]


@pytest.mark.parametrize("name", ["Zoë", "O'Brien", "Anne-Marie", "Dr. J. Smith", "...", "李雷", "a.b", "x" * 100])
def test_names_that_are_labels_are_accepted(name: str) -> None:
    assert check_name(f" {name} ") == name


def test_a_folder_of_people_with_a_bad_name_enrols_nobody(tmp_path: Path) -> None:
    people = tmp_path / "people"
    for name in ("alice", "bob\x1b"):
        (people / name).mkdir(parents=True)
        write_photo(people / name / "1.png", [COLOURS["alice" if name == "alice" else "bob"]])
    code, _, err = run("faces", "enroll", str(people), "-g", str(tmp_path / "g.json"), "--embedder", "colour")
    assert (code, err) == (2, f"Error: invalid name 'bob\\x1b': holds a control character ({HINT})\n")
    assert not (tmp_path / "g.json").exists()


def test_forget_deletes_nothing_outside_the_gallery_even_from_a_tampered_file(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.jpg").write_bytes(b"precious")
    gallery = tmp_path / "g.json"
    LocalGallery(gallery).enroll("alice", vector("alice"), COLOUR, photos=[str(outside / "keep.jpg")])
    photo_dir = tmp_path / "g.json.photos"
    photo_dir.mkdir()
    (photo_dir / "bob").symlink_to(outside, target_is_directory=True)  # a link where bob's photos would be
    LocalGallery(gallery).enroll("bob", vector("bob"), COLOUR)
    code, out, err = run("faces", "forget", "alice", "-g", str(gallery))
    assert (code, out) == (0, f"forgot alice: embeddings, details deleted from {gallery}\n")
    assert err == (
        "1 photo(s) its record listed lie outside the gallery and were left in place (delete them yourself if "
        f"they are copies): {outside / 'keep.jpg'}\n"
    )
    code, out, _ = run("faces", "forget", "bob", "-g", str(gallery))
    assert code == 0
    assert (outside / "keep.jpg").read_bytes() == b"precious"
    assert not (photo_dir / "bob").exists() and not (photo_dir / "bob").is_symlink()  # the link only
    photo = write_photo(tmp_path / "p.png", [COLOURS["carol"]])
    (photo_dir / "carol").symlink_to(outside, target_is_directory=True)
    code, _, err = run(
        "faces", "enroll", "carol", str(photo), "-g", str(gallery), "--embedder", "colour", "--keep-photos"
    )
    assert code == 2 and err.startswith(f"Error: the photo folder {photo_dir / 'carol'} is a link")
    assert sorted(p.name for p in outside.iterdir()) == ["keep.jpg"]


def test_forget_after_remove_erases_the_kept_photos(tmp_path: Path) -> None:
    gallery = tmp_path / "g.json"
    folder = tmp_path / "alice"
    folder.mkdir()
    write_photo(folder / "1.png", [COLOURS["alice"]])
    write_photo(folder / "2.png", [COLOURS["alice"]])
    args = ["-g", str(gallery)]
    assert run("faces", "enroll", "alice", str(folder), *args, "--embedder", "colour", "--keep-photos")[0] == 0
    kept = tmp_path / "g.json.photos" / "alice"
    code, out, err = run("faces", "remove", "alice", *args)
    assert (code, out) == (0, f"removed alice from {gallery}\n")
    assert err == f"kept photos remain in {kept} (`faces forget` erases them)\n"
    assert sorted(p.name for p in kept.iterdir()) == ["1.png", "2.png"]
    code, out, _ = run("faces", "forget", "alice", *args)
    assert (code, out) == (0, f"forgot alice: 2 kept photo(s) deleted from {gallery} (its record was removed before)\n")
    assert not kept.exists()
    assert "alice" not in gallery.read_text()
    code, _, err = run("faces", "forget", "alice", *args)
    assert (code, err) == (2, f"Error: 'alice' is not enrolled in {gallery} (the gallery is empty)\n")


def test_a_running_identifier_notices_a_local_gallery_change(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    LocalGallery(path).enroll("alice", vector("alice"), COLOUR)
    identifier = FaceIdentifier(LocalGallery(path), ColourEmbedder())
    assert list(identifier.index.match(vector("alice"), 0.9).names) == ["alice"]
    assert identifier.refresh() is False  # unchanged: not re-read
    other = LocalGallery(path)  # another process
    other.enroll("bob", vector("bob"), COLOUR)
    assert list(identifier.index.match(vector("bob"), 0.9).names) == ["bob"]
    other.forget("alice")
    assert list(identifier.index.match(vector("alice"), 0.9).names) == ["unknown"]
    path.unlink()  # the whole gallery deleted: no one is named
    assert list(identifier.index.match(vector("bob"), 0.9).names) == ["unknown"]


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "CROWDCOUNT_CONFIG", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.mark.usefixtures("moto_aws")
def test_a_running_identifier_notices_a_dynamodb_gallery_change() -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    DynamoDBGallery(client, "faces").enroll("alice", vector("alice"), COLOUR)
    identifier = FaceIdentifier(DynamoDBGallery(client, "faces"), ColourEmbedder())
    assert list(identifier.index.match(vector("alice"), 0.9).names) == ["alice"]
    assert identifier.refresh() is False
    DynamoDBGallery(client, "faces").forget("alice")
    assert list(identifier.index.match(vector("alice"), 0.9).names) == ["unknown"]
    DynamoDBGallery(client, "faces").enroll("bob", vector("bob"), COLOUR)
    assert list(identifier.index.match(vector("bob"), 0.9).names) == ["bob"]


@pytest.mark.usefixtures("moto_aws")
def test_the_worker_stops_naming_a_person_forgotten_between_two_jobs(tmp_path: Path) -> None:
    gallery = tmp_path / "g.json"
    for name in ("alice", "bob"):
        LocalGallery(gallery).enroll(name, vector(name), COLOUR)
    config = load_config(
        None,
        environ={},
        overrides={
            "worker": {
                "wait_time_seconds": 1,
                "visibility_timeout": 10,
                "heartbeat_seconds": 3,
                "grace_period_seconds": 5,
                "temp_dir": str(tmp_path),
            },
            "human_detection": {"frame_ratio": 1.0},
        },
    )
    ctx = make_context(REGION, session=boto3.Session(region_name=REGION))
    resources = Resources.from_config(config)
    provision(ctx, resources)
    detector = FaceSquareDetector()
    detector.check_rgb = False
    analyzer = VideoAnalyzer(
        [detector], frame_ratio=1.0, processors=[FaceIdentifier(LocalGallery(gallery), ColourEmbedder())]
    )
    clients = WorkerClients(ctx.client("sqs"), ctx.client("s3"), ctx.client("dynamodb"))
    video = write_people_video(tmp_path / "clip.avi", [["alice", "bob"]] * 4)
    store = StatusStore(clients.dynamodb, resources.table)

    def job(video_id: int) -> dict:
        submit_video(ctx, config, video, video_id)
        settings = dataclasses.replace(WorkerSettings.from_config(config), max_jobs=1)
        stats = Worker(clients, settings, analyzer, worker_id="w").run()
        assert stats.done == 1
        rf = store.get_step(video_id)["result_file"]
        return json.loads(clients.s3.get_object(Bucket=rf["bucket"], Key=rf["key"])["Body"].read())

    first = job(1)
    assert [p["name"] for p in first["faces"]["people"]] == ["alice", "bob"]
    assert run("faces", "forget", "alice", "-g", str(gallery))[0] == 0  # another process, between two jobs
    second = job(2)
    assert [p["name"] for p in second["faces"]["people"]] == ["bob"]
    assert second["frames"][0]["Face"]["identities"] == ["unknown", "bob"]


def result_document() -> dict:
    return {
        "video": {"name": "alice"},  # not a face identity: stays
        "faces": {
            "people": [
                {"name": "alice", "first_seen_ms": 0.0, "frames": 3, "best_similarity": 0.97},
                {"name": "bob", "first_seen_ms": 0.0, "frames": 3, "best_similarity": 0.95},
            ],
            "unknown": [{"name": "unknown-1", "frames": 2}],
        },
        "frames": [
            {"Face": {"identities": ["alice", "bob"], "people": ["alice", "bob"], "similarities": [0.97, 0.95]}},
            {"Face": {"identities": ["unknown"], "people": ["unknown-1"], "similarities": [0.2]}},
        ],
    }


def handler_answer() -> dict:
    return {"key": "alice.jpg", "faces": [{"identity": "alice", "similarity": 0.9}, {"identity": "bob"}]}


def test_redact_document_replaces_only_face_identities() -> None:
    document = result_document()
    assert redact_document(document, "alice") == 3
    assert document["video"] == {"name": "alice"}
    assert [p["name"] for p in document["faces"]["people"]] == [FORGOTTEN, "bob"]
    assert document["faces"]["people"][0]["frames"] == 3
    assert document["frames"][0]["Face"]["identities"] == [FORGOTTEN, "bob"]
    assert document["frames"][0]["Face"]["people"] == [FORGOTTEN, "bob"]
    answer = handler_answer()
    assert redact_document(answer, "alice") == 1
    assert answer == {"key": "alice.jpg", "faces": [{"identity": FORGOTTEN, "similarity": 0.9}, {"identity": "bob"}]}


def test_forget_redacts_local_result_files(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "day1").mkdir(parents=True)
    compact = results / "day1" / "a.json"
    compact.write_text(json.dumps(result_document(), separators=(",", ":")))
    indented = results / "b.json"
    indented.write_text(json.dumps(result_document(), indent=2) + "\n")
    other = results / "c.json"
    other.write_text('{"summary": {"Human": {"max_count": 3}}}')
    (results / "notes.txt").write_text("alice")
    gallery = tmp_path / "g.json"
    LocalGallery(gallery).enroll("alice", vector("alice"), COLOUR)
    code, out, _ = run("faces", "forget", "alice", "-g", str(gallery), "--results", str(results))
    assert code == 0
    assert out.splitlines() == [
        f"forgot alice: embeddings, details deleted from {gallery}",
        f"redacted alice in 2 of 3 result file(s) in {results} (6 mention(s) now 'forgotten')",
    ]
    for path in (compact, indented):
        document = json.loads(path.read_text())
        assert '"alice"' not in json.dumps(document["faces"]) + json.dumps(document["frames"])
        assert document["faces"]["people"][1]["name"] == "bob"
    assert "\n" not in compact.read_text() and indented.read_text().endswith("}\n")
    assert other.read_text() == '{"summary": {"Human": {"max_count": 3}}}'
    assert (results / "notes.txt").read_text() == "alice"
    # again, alice no longer in the gallery: the result files only (nothing left to replace)
    code, out, err = run("faces", "forget", "alice", "-g", str(gallery), "--results", str(compact))
    assert code == 0
    assert err == f"alice holds nothing in {gallery}; redacting the result files only\n"
    assert out == f"redacted alice in 0 of 1 result file(s) in {compact} (0 mention(s) now 'forgotten')\n"
    code, _, err = run("faces", "forget", "alice", "-g", str(gallery), "--results", str(tmp_path / "nope"))
    assert (code, err) == (
        2,
        f"Error: --results '{tmp_path / 'nope'}': no such file or folder (give a result file or a folder)\n",
    )


def test_redact_files_rewrites_in_place_only(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result_document()))
    os.chmod(path, 0o640)
    report = redact_files([path], "bob")
    assert (report.scanned, report.changed, report.replaced) == (1, [str(path)], 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"] and (path.stat().st_mode & 0o777) == 0o640
    with pytest.raises(GalleryError):
        redact_files([path], "..")


@pytest.mark.usefixtures("moto_aws")
def test_forget_redacts_result_files_in_s3(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="results")
    s3.put_object(Bucket="results", Key="videos/1/human_detector/a.json", Body=json.dumps(result_document()).encode())
    s3.put_object(Bucket="results", Key="videos/2/human_detector/b.json", Body=b'{"faces": {"people": []}}')
    s3.put_object(Bucket="results", Key="videos/1/human_detector/a.csv", Body=b"alice")
    s3.put_object(Bucket="results", Key="elsewhere/c.json", Body=json.dumps(result_document()).encode())
    gallery = tmp_path / "g.json"
    LocalGallery(gallery).enroll("alice", vector("alice"), COLOUR)
    code, out, err = run("faces", "forget", "alice", "-g", str(gallery), "--results", "s3://results/videos/")
    assert code == 0, err
    assert out.splitlines()[1] == (
        "redacted alice in 1 of 2 result file(s) in s3://results/videos/ (3 mention(s) now 'forgotten')"
    )
    obj = s3.get_object(Bucket="results", Key="videos/1/human_detector/a.json")
    document = json.loads(obj["Body"].read())
    assert [p["name"] for p in document["faces"]["people"]] == [FORGOTTEN, "bob"]
    assert obj["ContentType"] == "application/json"
    assert s3.get_object(Bucket="results", Key="videos/1/human_detector/a.csv")["Body"].read() == b"alice"
    assert b'"alice"' in s3.get_object(Bucket="results", Key="elsewhere/c.json")["Body"].read()  # another prefix


def test_a_record_with_a_name_enrolled_before_names_were_checked_can_still_be_forgotten(tmp_path: Path) -> None:
    gallery = tmp_path / "g.json"
    LocalGallery(gallery).enroll("alice", vector("alice"), COLOUR)
    stray = tmp_path / "photo.jpg"  # where `enroll .. photo.jpg --keep-photos` used to copy the photo
    stray.write_bytes(b"jpeg")
    document = json.loads(gallery.read_text())
    document["people"].append({**document["people"][0], "name": "..", "photos": [str(stray)]})
    gallery.write_text(json.dumps(document))
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"faces": {"people": [{"name": ".."}, {"name": "alice"}]}}))
    code, out, err = run("faces", "forget", "..", "-g", str(gallery), "--results", str(results))
    assert code == 0, err
    assert out.splitlines() == [
        f"forgot ..: embeddings, details deleted from {gallery}",
        f"redacted .. in 1 of 1 result file(s) in {results} (1 mention(s) now 'forgotten')",
    ]
    assert err.startswith("1 photo(s) its record listed lie outside the gallery and were left in place")
    assert stray.read_bytes() == b"jpeg" and sorted(p.name for p in tmp_path.iterdir()) == [
        "g.json",
        "photo.jpg",
        "r.json",
    ]
    assert LocalGallery(gallery).names() == ["alice"]
    assert json.loads(results.read_text())["faces"]["people"] == [{"name": FORGOTTEN}, {"name": "alice"}]
    code, _, err = run("faces", "forget", "..", "-g", str(gallery))  # now gone: refused as any bad name
    assert code == 2 and err.startswith("Error: invalid name '..'")


def test_redact_files_finds_a_name_written_as_utf8_or_escaped(tmp_path: Path) -> None:
    document = {"faces": {"people": [{"name": "José"}]}, "frames": [{"Face": {"identities": ["José", "bob"]}}]}
    raw = tmp_path / "raw.json"  # as jq or another tool writes it: the name's own characters
    raw.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    escaped = tmp_path / "escaped.json"  # as crowdcount writes it: \u00e9
    escaped.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    report = redact_files([tmp_path], "José")
    assert (report.scanned, sorted(report.changed), report.replaced) == (2, [str(escaped), str(raw)], 4)
    for path in (raw, escaped):
        redacted = json.loads(path.read_text(encoding="utf-8"))
        assert redacted["faces"]["people"] == [{"name": FORGOTTEN}]
        assert redacted["frames"][0]["Face"]["identities"] == [FORGOTTEN, "bob"]
    assert "Jos" not in raw.read_text(encoding="utf-8") + escaped.read_text(encoding="utf-8")


def test_redact_leaves_the_faces_section_own_name_embedder_and_gallery_alone() -> None:
    """A person may be called like the embedder ('dlib') or the section ('faces'): only identities change."""
    for person in ("dlib", "faces", "g.json"):
        document = {
            "faces": {
                "name": "faces",
                "gallery": {"location": "g.json", "people": 1},
                "embedder": {"name": "dlib", "dim": 128, "model": {"name": "dlib"}},
                "people": [{"name": person, "frames": 2}],
            },
            "frames": [{"Face": {"identities": [person], "people": [person]}}],
        }
        assert redact_document(document, person) == 3
        assert document["faces"]["name"] == "faces"
        assert document["faces"]["gallery"] == {"location": "g.json", "people": 1}
        assert document["faces"]["embedder"] == {"name": "dlib", "dim": 128, "model": {"name": "dlib"}}
        assert document["faces"]["people"] == [{"name": FORGOTTEN, "frames": 2}]
        assert document["frames"][0]["Face"] == {"identities": [FORGOTTEN], "people": [FORGOTTEN]}
