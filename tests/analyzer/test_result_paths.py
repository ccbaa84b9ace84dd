"""A result file names its video by an absolute path (a local file) so that ``find --annotate`` and ``find --in``
next to the videos find it again from any folder; a URI stays as it is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crowdcount.analyzer import VideoAnalyzer, to_document

from conftest import SquareDetector, write_moving


def test_a_video_given_by_a_relative_path_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "clips").mkdir()
    write_moving(tmp_path / "clips" / "a.mp4", 5, [lambda i: (4 + 4 * i, 10)])
    monkeypatch.chdir(tmp_path)
    document = to_document(VideoAnalyzer([SquareDetector()], 1.0).analyze(Path("clips") / "a.mp4"))
    assert document["video"]["path"] == os.path.join(str(tmp_path), "clips", "a.mp4")
    assert document["video"]["name"] == "a.mp4"
