"""A gallery file whose people have fields of the wrong type is corrupt (one line, exit 2), never read as
something else (a photo list given as text was read as one photo per character)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("photos", "abc", "'x' has photos that are not a list of text"),
        ("sources", 5, "'x' has sources that are not a list of text"),
        ("sources", [1], "'x' has sources that are not a list of text"),
        ("name", None, "a person's name is not text: None"),
    ],
)
def test_fields_of_the_wrong_type_are_corrupt(tmp_path: Path, field: str, value: object, message: str) -> None:
    person = {"name": "x", "embeddings": [[1.0, 0.0]], field: value}
    content = json.dumps(
        {"format": "crowdcount-face-gallery", "version": 1, "embedder": {"name": "dlib", "dim": 2}, "people": [person]}
    )
    gallery = tmp_path / "g.json"
    gallery.write_text(content)
    for command in (["list"], ["forget", "x"]):
        code, stdout, err = run_cli("faces", *command, "-g", str(gallery))
        assert code == 2, stdout + err
        assert err == (
            f"Error: gallery {gallery} is corrupt: {message} (restore it from a backup, or enrol the people again "
            "into a new gallery file)\n"
        )
    assert gallery.read_text() == content
