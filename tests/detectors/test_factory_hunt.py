"""The detector factory: an argument of a wrong type is one ``DetectorError`` (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdcount.detectors import build_detector
from crowdcount.errors import DetectorError

from conftest import run_cli as run

pytestmark = pytest.mark.usefixtures("keep_logging")


def test_a_numeric_face_model_path_is_a_path_like_the_human_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DetectorError) as caught:
        build_detector("face", {"model_path": 123})
    assert str(caught.value) == (
        "model path '123' does not exist "
        "(give a frozen graph .pb or a SavedModel directory of a TF Object Detection API model)"
    )


@pytest.mark.parametrize("value", ["x", 2.5, True])
def test_a_face_class_id_that_is_not_an_integer_is_refused(value: object) -> None:
    with pytest.raises(DetectorError) as caught:
        build_detector("face", {"face_class_id": value})
    assert str(caught.value) == f"detector 'face': face_class_id must be an integer, got {value!r}"


def test_the_cli_reports_a_numeric_face_model_path_on_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("analyze", "missing.mp4", "-d", "face", "--detector-arg", "face.model_path=123")
    assert code == 2
    assert err == (
        "Error: model path '123' does not exist "
        "(give a frozen graph .pb or a SavedModel directory of a TF Object Detection API model)\n"
    )
