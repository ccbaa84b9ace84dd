"""``crowdcount find`` end to end on real footage (a PETS09 person cut out by the ground truth, a MOT17 stranger),
and its bad inputs: one line, exit 1 or 2, no output written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdcount.analyzer.tracking import encode_vector
from crowdcount.eval.metrics import iou_matrix

from conftest import SAMPLE_CLIP, run_cli

pytestmark = pytest.mark.real_model

PERSON, FRAME = 13, 83  # a PETS09-S2L1 person and the frame their query photo is cut from


def gt_rows(data_dir: Path) -> np.ndarray:
    return np.loadtxt(data_dir / "pets09" / "gt_frames001-124.txt", delimiter=",", ndmin=2)


def cut(video: Path, index: int, box: np.ndarray, path: Path) -> Path:
    capture = cv2.VideoCapture(str(video))
    for _ in range(index):
        ok, frame = capture.read()
        assert ok
    capture.release()
    x, y, w, h = (round(float(v)) for v in box)
    assert cv2.imwrite(str(path), frame[max(0, y) : y + h, max(0, x) : x + w])
    return path


def tall_photo(path: Path) -> Path:
    """A synthetic tight crop (taller than wide): used as it is, without a detection."""
    image = np.full((120, 50, 3), 90, np.uint8)
    image[10:60, 10:40] = (30, 30, 160)
    cv2.imwrite(str(path), image)
    return path


@pytest.mark.needs_data
def test_find_a_person_from_one_photo_and_not_a_stranger(tmp_path: Path, data_dir: Path) -> None:
    rows = gt_rows(data_dir)
    row = rows[(rows[:, 1] == PERSON) & (rows[:, 0] == FRAME)][0]
    query = cut(data_dir / "pets09" / "vtest.avi", FRAME, row[2:6] * 0.625, tmp_path / "query.png")
    mot = np.loadtxt(data_dir / "mot17" / "MOT17-09" / "gt.txt", delimiter=",", ndmin=2)
    pick = mot[(mot[:, 0] == 100) & (mot[:, 6] == 1) & (mot[:, 8] > 0.9)]
    pick = pick[np.argmax(pick[:, 5])]
    stranger = cut(data_dir / "mot17" / "MOT17-09" / "MOT17-09-DPM-raw.mp4", 100, pick[2:6] * 0.5, tmp_path / "s.png")

    out, sheets = tmp_path / "matches.json", tmp_path / "sheets"
    code, stdout, err = run_cli(
        "find", str(query), "--in", str(SAMPLE_CLIP), "--frame-ratio", "0.5", "-o", str(out), "--annotate", str(sheets)
    )
    assert code == 0, err
    document = json.loads(out.read_text())
    assert document["query"] == [{"photo": str(query), "box": [0.0, 0.0, 17.0, 57.0], "whole_photo": True}]
    matches = document["matches"]
    assert matches and matches[0]["video"] == SAMPLE_CLIP.name and "matching tracks" in stdout
    assert [m["similarity"] for m in matches] == sorted((m["similarity"] for m in matches), reverse=True)
    assert all(m["similarity"] >= document["threshold"] for m in matches)
    assert len(list(sheets.glob("*.png"))) == len(matches)
    # the matches cover >= 50 % of the annotated frames the person is in, and >= 60 % of matched boxes are them
    truth = {int(r[0]): r[2:6] * 0.625 for r in rows[rows[:, 1] == PERSON]}
    analysed = {f["frame_index"] for m in matches for f in m["frames"]} | set(range(1, 125, 2))
    covered, right, boxes = set(), 0, 0
    for match in matches:
        for frame in match["frames"]:
            index = frame["frame_index"]
            if index > 124:
                continue
            boxes += 1
            y0, x0, y1, x1 = np.array(frame["box"]) * [360, 480, 360, 480]
            if index in truth:
                x, y, w, h = truth[index]
                if iou_matrix(np.array([[x0, y0, x1, y1]]), np.array([[x, y, x + w, y + h]]))[0, 0] >= 0.5:
                    right += 1
                    covered.add(index)
    in_view = [i for i in truth if i in analysed]
    assert len(covered) >= 0.5 * len(in_view), (len(covered), len(in_view))
    assert right >= 0.6 * boxes, (right, boxes)

    # the stranger, searched in a result file written with --embeddings: no match
    result = tmp_path / "sample.json"
    code, _, err = run_cli("analyze", str(SAMPLE_CLIP), "-d", "human", "--frame-ratio", "0.5", "--embeddings", "-o",
                           str(result))  # fmt: skip
    assert code == 0, err
    code, stdout, err = run_cli("find", str(stranger), "--in", str(result), "--json")
    assert code == 0, err
    assert json.loads(stdout)["matches"] == []
    # and the person again, from the result file: the same best track as from the video
    code, stdout, _ = run_cli("find", str(query), "--in", str(tmp_path), "--json")
    assert code == 0 and json.loads(stdout)["matches"][0]["track_id"] == matches[0]["track_id"]


def result_document(people: list[dict], embeddings: bool = True) -> dict:
    tracking: dict = {"unique_people": len(people), "people": people}
    if embeddings:
        tracking["embeddings"] = {"model": "person-reid-0287", "dim": 256, "encoding": "base64 float16"}
    return {"schema_version": 1, "video": {"name": "v.mp4"}, "frames": [], "tracking": tracking}


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("unreadable", 1, "cannot be read as an image"),
        ("missing", 1, "does not exist"),
        ("no person", 1, "no person found in photo"),
        ("blank tall photo", 1, "no person found in photo"),
        ("no vectors", 1, "holds no appearance vectors"),
        ("no people", 1, "no people were tracked"),
        ("no tracks", 1, "no people were tracked"),
        ("no source", 2, "does not exist"),
        ("unknown model", 1, "vectors come from 'person-reid-9999', which cannot be used"),
        ("damaged vector", 1, "a damaged result file (ValueError: "),
    ],
)
def test_bad_inputs_fail_on_one_line_and_write_nothing(tmp_path: Path, case: str, code: int, message: str) -> None:
    photo = tall_photo(tmp_path / "person.png")
    vector = encode_vector(np.ones(256, np.float32) / 16)
    person = {"track_id": 1, "first_s": 0.0, "last_s": 1.0, "embedding": vector}
    source = tmp_path / "result.json"
    source.write_text(json.dumps(result_document([person])))
    if case == "unreadable":
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(b"not a jpeg")
    elif case == "missing":
        photo = tmp_path / "gone.jpg"
    elif case == "no person":
        photo = tmp_path / "wall.png"
        cv2.imwrite(str(photo), np.full((240, 320, 3), 128, np.uint8))
    elif case == "blank tall photo":  # the shape of a tight crop, but one colour: nobody in it
        photo = tmp_path / "blank.png"
        cv2.imwrite(str(photo), np.full((300, 100, 3), 128, np.uint8))
    elif case == "no vectors":
        source.write_text(json.dumps(result_document([{k: v for k, v in person.items() if k != "embedding"}], False)))
    elif case == "no people":
        source.write_text(json.dumps(result_document([])))
    elif case == "no tracks":
        source = tmp_path / "empty.mp4"  # an empty street: 1 s of grey frames
        writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
        for _ in range(10):
            writer.write(np.full((120, 160, 3), 100, np.uint8))
        writer.release()
    elif case == "no source":
        source = tmp_path / "nothing-here"
    elif case == "unknown model":
        document = result_document([person])
        document["tracking"]["embeddings"]["model"] = "person-reid-9999"
        source.write_text(json.dumps(document))
    elif case == "damaged vector":  # 3 bytes: not float16 values
        source.write_text(json.dumps(result_document([{**person, "embedding": "AAAA"}])))
    out = tmp_path / "matches.json"
    exit_code, _, err = run_cli("find", str(photo), "--in", str(source), "-o", str(out))
    assert exit_code == code, err
    assert message in err and err.count("\n") == 1 and err.startswith("Error: ")
    assert not out.exists()


class MeanColour:
    """A stand-in person embedder: the crop's mean colour of its left half, as a unit vector (so a mirror image
    gives the right half's)."""

    def __init__(self, name: str) -> None:
        self.name, self.calls = name, 0

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        left = np.asarray(crops, np.float32)[:, :, :64].reshape(len(crops), -1, 3).mean(axis=1) + 1
        return left / np.linalg.norm(left, axis=1, keepdims=True)


def test_the_query_is_embedded_once_per_model_with_its_mirror_image() -> None:
    from crowdcount.analyzer.search import QueryPhoto, QueryVectors, search_document, stored_model

    crop = np.zeros((256, 128, 3), np.uint8)
    crop[:, :64] = (200, 0, 0)  # red left half, blue right half
    crop[:, 64:] = (0, 0, 200)
    built: dict[str, MeanColour] = {}
    query = QueryVectors(
        [QueryPhoto("p.png", [0, 0, 128, 256], True, np.zeros(3), crop)],
        build=lambda name: built.setdefault(name, MeanColour(name)),
    )
    both = query("a")
    assert np.allclose(both, np.array([202, 2, 202]) / np.linalg.norm([202, 2, 202]), atol=1e-6)
    assert query("a") is both and built["a"].calls == 2  # the crop and its mirror, once
    plain = QueryVectors(query.photos, flip=False, build=lambda name: MeanColour(name))("a")
    assert np.allclose(plain, np.array([201, 1, 1]) / np.linalg.norm([201, 1, 1]), atol=1e-6)
    # a result file is searched with the query of the model its vectors come from (0287 when it does not say)
    document = result_document([{"track_id": 1, "first_s": 0.0, "last_s": 1.0, "embedding": encode_vector(both)}])
    assert stored_model(document) == "person-reid-0287"
    document["tracking"]["embeddings"]["model"] = "b"
    (match,) = search_document(document, query, 0.99, "r.json")
    assert match.similarity > 0.999 and set(built) == {"a", "b"}
    del document["tracking"]["embeddings"]["model"]
    assert stored_model(document) == "person-reid-0287"


# one person in one place at a time: (track, cosine with the query, analysed frames it is seen in)
SCENE = [
    (1, 1.0, range(1, 7)),  # the person
    (2, 0.9, range(2, 7)),  # a look-alike on screen at the same time as the person: not them
    (3, 0.8, range(7, 11)),  # the person again, after track 1 ends
    (4, 0.7, range(5, 11)),  # seen only while tracks 1 and 3 are: not them
    (5, 0.6, range(10, 20)),  # a hand-off: 1 of its 10 frames shared with track 3, which keeps it
    (6, 0.3, range(11, 20)),  # under the threshold
]


def scene_document(query: np.ndarray) -> dict:
    """A result document of :data:`SCENE`: each person's vector at its cosine with ``query`` (a unit vector)."""
    rng = np.random.default_rng(7)
    people, frames = [], {i: {"boxes": [], "track_ids": []} for i in range(1, 20)}
    for track, cosine, seen in SCENE:
        other = rng.normal(size=query.shape)
        other -= (other @ query) * query
        vector = cosine * query + np.sqrt(1 - cosine**2) * other / np.linalg.norm(other)
        people.append({"track_id": track, "first_s": seen[0] / 10, "last_s": seen[-1] / 10, "embedding":
                       encode_vector(vector)})  # fmt: skip
        for index in seen:
            frames[index]["boxes"].append([0.1 * track, 0.1, 0.1 * track + 0.1, 0.2])
            frames[index]["track_ids"].append(track)
    document = result_document(people)
    document["frames"] = [{"frame_index": i, "Human": entry} for i, entry in frames.items()]
    return document


def test_one_at_a_time_rejects_look_alikes_seen_with_a_better_match() -> None:
    from crowdcount.analyzer.search import one_at_a_time

    scores = {t: s for t, s, _ in SCENE}
    frames = {t: list(seen) for t, _, seen in SCENE}
    kept = one_at_a_time(scores, frames, 0.5)
    assert kept == {1: set(range(1, 7)), 3: set(range(7, 11)), 5: set(range(11, 20))}
    assert list(kept) == [1, 3, 5]  # best first
    # a stricter tolerance drops the hand-off too; without frames (nothing known) a track is kept
    assert list(one_at_a_time(scores, frames, 0.5, tolerance=0.05)) == [1, 3]
    assert one_at_a_time({1: 0.9, 2: 0.8}, {}, 0.5) == {1: set(), 2: set()}


def test_search_document_keeps_one_person_in_one_place() -> None:
    from crowdcount.analyzer.search import search_document

    query = np.zeros(256, np.float32)
    query[0] = 1.0
    matches = search_document(scene_document(query), query, 0.5, "scene.json")
    assert [m.track_id for m in matches] == [1, 3, 5]
    assert [round(m.similarity, 2) for m in matches] == [1.0, 0.8, 0.6]
    assert [[f["frame_index"] for f in m.frames] for m in matches] == [
        list(range(1, 7)),
        list(range(7, 11)),
        list(range(11, 20)),
    ]
    assert matches[2].frames[0] == {"frame_index": 11, "box": [0.5, 0.1, 0.6, 0.2]}


def test_find_cli_rejects_a_look_alike_seen_with_the_person(tmp_path: Path) -> None:
    """End to end through the CLI and the real embedder: the query photo's vector (the whole tall photo and its
    mirror image, as ``find`` embeds it) placed in a result file, a look-alike beside it."""
    from crowdcount.analyzer.search import embed_query_crops, read_photo
    from crowdcount.detectors.reid import build_person_embedder, crop_people

    photo = tall_photo(tmp_path / "person.png")
    rgb = read_photo(photo)
    whole = np.array([[0, 0, rgb.shape[1], rgb.shape[0]]], np.float32)
    query = embed_query_crops(build_person_embedder(), crop_people(rgb, whole))
    source = tmp_path / "scene.json"
    source.write_text(json.dumps(scene_document(query)))
    code, stdout, err = run_cli("find", str(photo), "--in", str(source), "--json")
    assert code == 0, err
    document = json.loads(stdout)
    assert document["query"][0]["whole_photo"] is True
    matches = document["matches"]
    assert [m["track_id"] for m in matches] == [1, 3, 5]
    assert [round(m["similarity"], 2) for m in matches] == [1.0, 0.8, 0.6]
    assert [len(m["frames"]) for m in matches] == [6, 4, 9]
    assert set(matches[0]) == {"video", "track_id", "similarity", "first_s", "last_s", "frames"}


def test_a_contact_sheet_names_the_match_and_times_its_views(tmp_path: Path) -> None:
    from crowdcount.analyzer.search import HEADER, MIN_SHEET_WIDTH, TILE, Match, contact_sheet

    video = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(20):
        writer.write(np.full((48, 64, 3), 200, np.uint8))
    writer.release()
    frames = [{"frame_index": i, "box": [0.1, 0.1, 0.9, 0.5]} for i in (1, 11)]
    match = Match("walk.mp4", 4, 0.61, 0.0, 1.0, frames, str(video), str(video))
    sheet = contact_sheet(match, tmp_path / "sheets" / "walk-4.png")
    assert sheet is not None
    image = cv2.imread(str(sheet))
    assert image.shape == (HEADER + TILE[1], MIN_SHEET_WIDTH, 3)  # two views, padded to the header's width
    assert image[:HEADER].max() > 200 and image[HEADER:, : 2 * TILE[0]].max() > 32  # the header's text; the views
    missing = Match("gone.mp4", 1, 0.7, 0.0, 1.0, frames, "", str(tmp_path / "gone.mp4"))
    assert contact_sheet(missing, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    # a sheet that cannot be written (a name over the file system's limit) is not a missing video
    with pytest.raises(OSError, match="cannot write"):
        contact_sheet(match, tmp_path / ("x" * 300 + ".png"))


def test_a_contact_sheet_takes_boxes_flat_against_the_frame_edge(tmp_path: Path) -> None:
    from crowdcount.analyzer.search import HEADER, TILE, Match, contact_sheet

    video = tmp_path / "edge.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(5):
        writer.write(np.full((48, 64, 3), 200, np.uint8))
    writer.release()
    # boxes clipped to the frame that kept no height (bottom edge) or no width (right edge), as a result file holds
    frames = [{"frame_index": 2, "box": [1.0, 0.2, 1.0, 0.6]}, {"frame_index": 4, "box": [0.1, 1.0, 0.5, 1.0]}]
    sheet = contact_sheet(Match("edge.mp4", 1, 0.7, 0.1, 0.3, frames, "", str(video)), tmp_path / "edge-1.png")
    assert sheet is not None
    image = cv2.imread(str(sheet))
    assert image.shape[0] == HEADER + TILE[1] and image[HEADER:, : 2 * TILE[0]].max() > 150  # two views of the frame


def test_a_person_tracked_without_a_vector_leaves_the_others_searchable() -> None:
    """A person the tracker followed only through weak boxes (under the detector's threshold: never embedded)
    has no ``embedding`` in a result file written with --embeddings; the file's other people can still be found."""
    from crowdcount.analyzer.search import search_document

    query = np.zeros(256, np.float32)
    query[0] = 1.0
    seen = {"first_s": 0.0, "last_s": 1.0}
    document = result_document([{"track_id": 1, **seen}, {"track_id": 2, **seen, "embedding": encode_vector(query)}])
    document["frames"] = [{"frame_index": 1, "Human": {"boxes": [[0.1, 0.1, 0.5, 0.3]], "track_ids": [2]}}]
    (match,) = search_document(document, query, 0.5, "result.json")
    assert (match.track_id, round(match.similarity, 3), match.frames) == (
        2,
        1.0,
        [{"frame_index": 1, "box": [0.1, 0.1, 0.5, 0.3]}],
    )


def test_a_video_given_with_its_own_result_file_is_searched_once(tmp_path: Path) -> None:
    from crowdcount.cli.find import _drop_covered_videos

    video, other = tmp_path / "door.mp4", tmp_path / "hall.mp4"
    video.write_bytes(b"x")
    other.write_bytes(b"x")
    result = tmp_path / "results" / "door.json"
    result.parent.mkdir()
    result.write_text(json.dumps({**result_document([]), "video": {"name": "door.mp4", "path": str(video)}}))
    sources = [("video", video), ("result", result), ("video", other), ("video", tmp_path / "." / "hall.mp4")]
    assert _drop_covered_videos(sources) == [("result", result), ("video", other)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("vector not base64", "r.json: a damaged result file (Error: "),
        ("vector of 4 values", "r.json: a damaged result file (ValueError: matmul"),
        ("no first_s", "r.json: a damaged result file (KeyError: 'first_s')"),
        ("no frame_index", "r.json: a damaged result file (KeyError: 'frame_index')"),
        ("track id not a number", "r.json: a damaged result file (ValueError: invalid literal for int()"),
    ],
)
def test_a_damaged_result_file_is_a_search_error_not_a_traceback(damage: str, message: str) -> None:
    from crowdcount.analyzer.search import SearchError, search_document

    query = np.zeros(256, np.float32)
    query[0] = 1.0
    document = scene_document(query)
    person = document["tracking"]["people"][0]
    if damage == "vector not base64":
        person["embedding"] = "!!!not base64"
    elif damage == "vector of 4 values":
        person["embedding"] = encode_vector(np.ones(4, np.float32) / 2)
    elif damage == "no first_s":
        del person["first_s"]
    elif damage == "no frame_index":
        del document["frames"][0]["frame_index"]
    else:
        person["track_id"] = "one"
    with pytest.raises(SearchError) as caught:
        search_document(document, query, 0.5, "r.json")
    assert caught.value.exit_code == 1
    assert str(caught.value).startswith(message), str(caught.value)


class AlwaysAPerson:
    """A stand-in detector that finds a person in any photo (as a real one may in a degenerate, flat image)."""

    def detect(self, frames: list[np.ndarray]) -> list:
        from crowdcount.detectors import Detections

        return [
            Detections(np.array([[0, 0, 2, 2]], np.float32), np.array([0.9], np.float32), np.array([1])) for _ in frames
        ]


@pytest.mark.parametrize("shape", [(2, 3000, 3), (240, 320, 3), (300, 100, 3)])
def test_a_photo_of_one_colour_shows_no_person_whatever_the_detector_says(shape: tuple[int, int, int]) -> None:
    from crowdcount.analyzer.search import SearchError, person_box

    with pytest.raises(SearchError, match=r"^no person found in photo 'flat.png'"):
        person_box(np.full(shape, 128, np.uint8), AlwaysAPerson(), "flat.png")  # type: ignore[arg-type]
    photo = np.random.default_rng(1).integers(0, 255, shape, np.uint8)  # something to see: the detector is asked
    box, whole = person_box(photo, AlwaysAPerson(), "p.png")  # type: ignore[arg-type]
    assert (box.tolist(), whole) == ([0, 0, 2, 2], False)
