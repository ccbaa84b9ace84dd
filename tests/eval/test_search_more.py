"""Searching a result document: fields that are there but wrong (a track twice, times or vectors that are not
numbers) are a damaged file, never a repeated match, a NaN in the JSON printed, or a person quietly unmatched."""

from __future__ import annotations

import numpy as np
import pytest

from crowdcount.analyzer.search import SearchError, search_document
from crowdcount.analyzer.tracking import encode_vector

QUERY = np.ones(4, np.float32) / 2


def document(people: list[dict]) -> dict:
    return {
        "video": {"name": "v.mp4"},
        "frames": [{"frame_index": 1, "Human": {"boxes": [[0, 0, 0.5, 0.5]], "track_ids": [1]}}],
        "tracking": {"people": people, "embeddings": {"model": "m"}},
    }


def person(track_id: int = 1, first_s: float = 0.0, vector: np.ndarray = QUERY) -> dict:
    return {"track_id": track_id, "first_s": first_s, "last_s": 1.0, "embedding": encode_vector(vector)}


def test_the_undamaged_document_matches_once() -> None:
    (match,) = search_document(document([person()]), QUERY, 0.5, "r.json")
    assert (match.track_id, round(match.similarity, 3), match.frames) == (
        1,
        1.0,
        [{"frame_index": 1, "box": [0, 0, 0.5, 0.5]}],
    )


@pytest.mark.parametrize(
    ("people", "message"),
    [
        ([person(), person(vector=-QUERY)], "r.json: a damaged result file (ValueError: track 1 is listed twice)"),
        (
            [person(first_s=float("nan"))],
            "r.json: a damaged result file (ValueError: track 1 has times that are not numbers)",
        ),
        (
            [person(vector=np.array([np.nan, 1, 1, 1], np.float32))],
            "r.json: a damaged result file (ValueError: track 1 has a vector that is not numbers)",
        ),
    ],
)
def test_damaged_people_are_refused(people: list[dict], message: str) -> None:
    with pytest.raises(SearchError) as error:
        search_document(document(people), QUERY, 0.5, "r.json")
    assert str(error.value).startswith(message), str(error.value)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([float("nan"), 0, 0.5, 0.5], "frame 1 has a box that is not 4 numbers: [nan, 0, 0.5, 0.5]"),
        ([0, 0, 0.5], "frame 1 has a box that is not 4 numbers: [0, 0, 0.5]"),
        ("0,0,1,1", "frame 1 has a box that is not 4 numbers: '0,0,1,1'"),
    ],
)
def test_a_matched_track_with_a_damaged_box_is_refused(box: object, message: str) -> None:
    # its contact sheet would have been a traceback (--annotate), its matches file held the box as it was
    doc = document([person()])
    doc["frames"][0]["Human"]["boxes"] = [box]
    with pytest.raises(SearchError) as error:
        search_document(doc, QUERY, 0.5, "r.json")
    assert str(error.value).startswith(f"r.json: a damaged result file (ValueError: {message})")
