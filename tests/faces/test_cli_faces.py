"""`crowdcount faces` and `analyze --identify` with the fake face detector and embedder: outputs, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import COLOURS, write_people_video, write_photo
from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("fake_faces")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "people"
    for name in ("alice", "bob"):
        (folder / name).mkdir(parents=True)
        write_photo(folder / name / "1.jpg", [COLOURS[name]])
        write_photo(folder / name / "2.png", [COLOURS[name]])
    write_photo(tmp_path / "carol.png", [COLOURS["carol"]])
    write_photo(tmp_path / "group.png", [COLOURS["alice"], COLOURS["bob"], COLOURS["carol"]])
    write_photo(tmp_path / "empty.png", [])
    (tmp_path / "notes.jpg").write_text("not a photo")
    return tmp_path


def test_enroll_list_remove_forget(photos: Path) -> None:
    gallery = str(photos / "g.json")
    code, out, _ = run(
        "faces",
        "enroll",
        "carol",
        str(photos / "carol.png"),
        "-g",
        gallery,
        "--embedder",
        "colour",
        "--detail",
        "student_id=42",
        "--detail",
        "class=3B",
    )
    assert code == 0, out
    assert out.splitlines() == [
        "enrolled carol: 1 photo(s), 1 embedding(s) in total",
        f"gallery: {gallery} (1 people, embedder colour)",
    ]
    code, out, _ = run("faces", "enroll", str(photos / "people"), "-g", gallery, "--embedder", "colour")
    assert code == 0, out
    assert out.splitlines()[:2] == [
        "enrolled alice: 2 photo(s), 2 embedding(s) in total",
        "enrolled bob: 2 photo(s), 2 embedding(s) in total",
    ]
    code, out, _ = run("faces", "list", "-g", gallery)
    assert code == 0
    assert out.splitlines() == [
        "alice\t2 embedding(s)",
        "bob\t2 embedding(s)",
        "carol\t1 embedding(s)\tclass=3B, student_id=42",
        f"3 people in {gallery}",
    ]
    document = json.loads(Path(gallery).read_text())
    assert document["embedder"] == {"name": "colour", "dim": 3}
    assert [p["sources"] for p in document["people"]] == [["1.jpg", "2.png"], ["1.jpg", "2.png"], ["carol.png"]]
    assert all(p["photos"] == [] for p in document["people"])  # no photos unless asked
    assert not (photos / "g.json.photos").exists()

    code, out, _ = run("faces", "remove", "bob", "-g", gallery)
    assert (code, out) == (0, f"removed bob from {gallery}\n")
    code, out, _ = run("faces", "list", "-g", gallery, "--json")
    assert [p["name"] for p in json.loads(out)["people"]] == ["alice", "carol"]


def test_keep_photos_and_forget_removes_every_trace(photos: Path) -> None:
    gallery = photos / "g.json"
    code, out, _ = run(
        "faces",
        "enroll",
        "alice",
        str(photos / "people" / "alice"),
        "-g",
        str(gallery),
        "--embedder",
        "colour",
        "--keep-photos",
        "--detail",
        "email=a@example.org",
    )
    assert code == 0, out
    kept = sorted(p.name for p in (photos / "g.json.photos" / "alice").iterdir())
    assert kept == ["1.jpg", "2.png"]
    code, out, _ = run("faces", "forget", "alice", "-g", str(gallery))
    assert (code, out) == (0, f"forgot alice: embeddings, details and 2 kept photo(s) deleted from {gallery}\n")
    text = gallery.read_text()
    assert "alice" not in text and "a@example.org" not in text
    assert not (photos / "g.json.photos" / "alice").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["dave", "{p}/empty.png"],
            1,
            "Error: {p}/empty.png: no face found (use a photo where the face is clearly visible)",
        ),
        (
            ["dave", "{p}/group.png"],
            1,
            "Error: {p}/group.png: 3 faces found, expected one (crop the photo to the person to enrol)",
        ),
        (["dave", "{p}/notes.jpg"], 1, "Error: {p}/notes.jpg: not an image OpenCV can read"),
        (["dave", "{p}/missing.jpg"], 1, "Error: {p}/missing.jpg: no such file"),
        (
            ["dave", "{p}/carol.png", "{p}/group.png", "{p}/empty.png"],
            1,
            "Error: 2 of 3 photos cannot be enrolled: {p}/group.png: 3 faces found, expected one; {p}/empty.png: "
            "no face found (nothing was enrolled; use photos showing exactly one face)",
        ),
        (
            ["unknown", "{p}/carol.png"],
            2,
            "Error: the name 'unknown' is reserved for faces that are not in the gallery",
        ),
        (
            ["{p}/carol.png"],
            2,
            "Error: '{p}/carol.png' is not a folder of NAME/ subfolders (give NAME PHOTO... to enrol one person, "
            "or a folder holding NAME/*.jpg)",
        ),
    ],
)
def test_enroll_bad_photos_enrol_nothing(photos: Path, args: list[str], code: int, message: str) -> None:
    gallery = photos / "g.json"
    result = run("faces", "enroll", *[a.format(p=photos) for a in args], "-g", str(gallery), "--embedder", "colour")
    assert result[0] == code
    assert result[2] == message.format(p=photos) + "\n"
    assert not gallery.exists()


def test_duplicate_name_needs_update(photos: Path) -> None:
    gallery = str(photos / "g.json")
    assert run("faces", "enroll", "carol", str(photos / "carol.png"), "-g", gallery, "--embedder", "colour")[0] == 0
    code, _, err = run("faces", "enroll", "carol", str(photos / "carol.png"), "-g", gallery, "--embedder", "colour")
    assert code == 2
    assert err == (
        f"Error: 'carol' is already enrolled in {gallery} (add --update to add these photos and details to that "
        "person, or choose another name)\n"
    )
    code, out, _ = run(
        "faces",
        "enroll",
        "carol",
        str(photos / "carol.png"),
        "-g",
        gallery,
        "--embedder",
        "colour",
        "--update",
        "--detail",
        "room=12",
    )
    assert code == 0
    assert out.splitlines()[0] == "enrolled carol: 1 photo(s), 2 embedding(s) in total"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken", "is corrupt: not valid JSON (Expecting property name enclosed in double quotes at line 1)"),
        ('{"a": 1}', "is not a crowdcount face gallery"),
        (
            '{"format": "crowdcount-face-gallery", "version": 1, "embedder": {"name": "colour", "dim": 3}, '
            '"people": [{"name": "x", "embeddings": [[1, 2]]}]}',
            "is corrupt: 'x' has embeddings of shape (1, 2), expected (k, 3)",
        ),
    ],
)
def test_corrupt_gallery(tmp_path: Path, content: str, message: str) -> None:
    gallery = tmp_path / "g.json"
    gallery.write_text(content)
    for command in (["list"], ["remove", "x"], ["forget", "x"]):
        code, _, err = run("faces", *command, "-g", str(gallery))
        assert code == 2
        assert err == (
            f"Error: gallery {gallery} {message} (restore it from a backup, or enrol the people again into a new "
            "gallery file)\n"
        )
    assert gallery.read_text() == content  # nothing lost


def test_unknown_name_and_another_embedder(photos: Path) -> None:
    gallery = str(photos / "g.json")
    code, _, err = run("faces", "remove", "zoe", "-g", gallery)
    assert (code, err) == (2, f"Error: 'zoe' is not enrolled in {gallery} (the gallery is empty)\n")
    run("faces", "enroll", "carol", str(photos / "carol.png"), "-g", gallery, "--embedder", "colour")
    code, _, err = run("faces", "forget", "zoe", "-g", gallery)
    assert (code, err) == (2, f"Error: 'zoe' is not enrolled in {gallery} (enrolled: carol)\n")
    code, _, err = run("faces", "enroll", "bob", str(photos / "people" / "bob"), "-g", gallery, "--embedder", "nope")
    assert code == 2
    assert err.startswith("Error: unknown face embedder 'nope'")


def test_analyze_identify_names_faces_and_counts_distinct_people(photos: Path) -> None:
    gallery = str(photos / "g.json")
    run("faces", "enroll", str(photos / "people"), "-g", gallery, "--embedder", "colour")
    # 10 fps: alice 0.0-0.9 s, then alice + carol (unknown) 1.0-1.4 s, then dave (unknown) once, then bob
    timeline = [["alice"]] * 10 + [["alice", "carol"]] * 5 + [["dave"]] + [["bob"]] * 4
    video = write_people_video(photos / "clip.avi", timeline)
    config = photos / "variables.json"
    config.write_text(json.dumps({"faces": {"embedder": "colour"}}))
    code, out, err = run(
        "analyze",
        str(video),
        "-d",
        "face",
        "--identify",
        gallery,
        "-o",
        str(photos / "r.json"),
        "--frame-ratio",
        "1",
        "--config",
        str(config),
    )
    assert code == 0, err
    assert out.splitlines()[-1] == (
        "clip.avi: 3 different people showed their face (2 known, 1 unknown): "
        "alice 0:00.00-0:01.40 (1.5 s), bob 0:01.60-0:01.90 (0.4 s)"
    )
    document = json.loads((photos / "r.json").read_text())
    faces = document["faces"]
    assert faces["match_threshold"] == 0.9 and faces["cluster_threshold"] == 0.95
    assert faces["embedder"]["name"] == "colour"
    assert faces["unknown"] == [
        {"name": "unknown-1", "first_seen_ms": 1000.0, "last_seen_ms": 1400.0, "seconds_on_screen": 0.5, "frames": 5}
    ]  # dave, seen once, is below min_sightings
    frame = document["frames"][10]["Face"]
    assert frame["identities"] == ["alice", "unknown"]
    assert frame["people"] == ["alice", "unknown-1"]
    assert frame["similarities"][0] == pytest.approx(1.0, abs=1e-3)
    assert [d["category"] for d in document["detectors"]] == ["Face"]


def test_watch_identify_names_the_same_faces_as_analyze(photos: Path) -> None:
    """``watch --identify`` runs the same identify stage (build_pipeline): each record names the faces."""
    gallery = str(photos / "g.json")
    run("faces", "enroll", str(photos / "people"), "-g", gallery, "--embedder", "colour")
    timeline = [["alice"]] * 4 + [["alice", "carol"]] * 3 + [["bob"]] * 3
    video = write_people_video(photos / "clip.avi", timeline)
    config = photos / "variables.json"
    config.write_text(json.dumps({"faces": {"embedder": "colour"}}))
    records = photos / "live.jsonl"
    code, _, err = run(
        "watch", str(video), "-d", "face", "--identify", gallery, "--no-table", "-o", str(records),
        "--config", str(config),
    )  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    frames = [r for r in lines if "Face" in r]
    assert [r["Face"]["identities"] for r in frames] == [["alice"]] * 4 + [["alice", "unknown"]] * 3 + [["bob"]] * 3
    code, _, err = run(
        "analyze", str(video), "-d", "face", "--identify", gallery, "-o", str(photos / "r.json"),
        "--frame-ratio", "1", "--config", str(config),
    )  # fmt: skip
    assert code == 0, err
    document = json.loads((photos / "r.json").read_text())
    assert [f["Face"]["identities"] for f in document["frames"]] == [r["Face"]["identities"] for r in frames]
