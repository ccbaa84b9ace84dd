from __future__ import annotations

import pytest

from crowdcount.detectors import DETECTORS, build_detector, detector_parameters, resolve_name
from crowdcount.errors import DetectorError


def test_registry_names_and_seed_aliases() -> None:
    assert {"human", "face"} <= set(DETECTORS)
    assert resolve_name("HumanDetector") == "human"
    assert resolve_name("FaceDetector") == "face"
    assert resolve_name("Human") == "human"


def test_unknown_detector_lists_valid_names() -> None:
    with pytest.raises(DetectorError) as info:
        build_detector("humna")
    text = str(info.value)
    assert "unknown detector 'humna'" in text
    assert "did you mean 'human'?" in text
    assert "valid detectors: face, human" in text


def test_unknown_argument_lists_valid_arguments() -> None:
    with pytest.raises(DetectorError, match="has no argument 'min_score'.*valid arguments: min_detection_score"):
        build_detector("human", {"min_score": 0.3})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"min_detection_score": 2}, "min_detection_score must be a number in"),
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1"),
        ({"model_path": "/nonexistent/model.pb"}, "does not exist"),
    ],
)
def test_bad_argument_values(args: dict, message: str) -> None:
    with pytest.raises(DetectorError, match=message):
        build_detector("human", args)


def test_building_loads_no_model() -> None:
    detector = build_detector("face", {"min_detection_score": 0.4, "max_batch_size": 5})
    assert detector._loaded is False
    assert detector.describe()["arguments"]["max_batch_size"] == 5
    assert "min_face_size" in detector_parameters("FaceDetector")


def test_frozen_graph_that_is_not_a_detection_model(tmp_path) -> None:
    bogus = tmp_path / "bogus.pb"
    bogus.write_bytes(b"this is not a graph")
    detector = build_detector("human", {"model_path": str(bogus)})
    with pytest.raises(DetectorError, match="not a TensorFlow frozen graph|not a TF Object Detection API graph"):
        detector.load()


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        # --detector-arg values are JSON: a list or a word where a name or a count belongs was a TypeError
        # traceback (unhashable list) or, at the first batch, OpenVINO's RuntimeError "Wrong value for property"
        ("human", {"preset": ["fast"]}, r"^detector 'human': preset must be one of accurate, nanodet, fast, ssdlite, "),
        (
            "face",
            {"model": ["yunet"]},
            r"^detector 'face': model must be one of centerface, mtcnn, yunet, got \['yunet'\]$",
        ),
        (
            "human",
            {"num_threads": "four"},
            r"^detector 'human': num_threads must be an integer >= 0 or null, got 'four'$",
        ),
        ("human", {"num_threads": -2}, r"^detector 'human': num_threads must be an integer >= 0 or null, got -2$"),
    ],
)
def test_argument_values_of_the_wrong_kind_are_refused_when_built(name: str, args: dict, message: str) -> None:
    with pytest.raises(DetectorError, match=message):
        build_detector(name, args)
