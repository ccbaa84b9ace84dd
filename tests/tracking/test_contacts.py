"""Close contacts on a synthetic calibrated scene, and the checks on calibration files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crowdcount.analyzer import VideoAnalyzer, to_document
from crowdcount.analyzer.contacts import Calibration, ContactsProcessor, to_ground
from crowdcount.analyzer.pipeline import build_processors
from crowdcount.analyzer.tracking import TrackingProcessor
from crowdcount.config import DEFAULTS
from crowdcount.errors import ConfigError

from conftest import SQUARE, SquareDetector, run_cli, write_moving

#: 1 pixel = 0.1 m on the ground (a camera looking straight down on a 16 m x 12 m floor): 160x120 frames.
TOP_DOWN = {"image": [[0, 0], [160, 0], [160, 120], [0, 120]], "ground": [[0, 0], [16, 0], [16, 12], [0, 12]]}


def calibration_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    return path


def analyse(video: Path, calibration: Calibration, **kwargs: float) -> dict:
    processors = [TrackingProcessor(appearance=False), ContactsProcessor(calibration, **kwargs)]
    return to_document(VideoAnalyzer([SquareDetector()], processors=processors).analyze(video))


def test_homography_maps_image_points_to_metres() -> None:
    calibration = Calibration.from_points(TOP_DOWN["image"], TOP_DOWN["ground"])
    matrix = calibration.homography(160, 120)
    assert np.allclose(to_ground(matrix, np.array([[80, 60], [10, 110]])), [[8, 6], [1, 11]], atol=1e-6)
    # fractions of the frame give the same homography
    fractions = Calibration.from_points(np.array(TOP_DOWN["image"]) / [160, 120], TOP_DOWN["ground"])
    assert np.allclose(fractions.homography(160, 120), matrix, atol=1e-9)


def test_two_people_walking_side_by_side_are_a_contact(tmp_path: Path) -> None:
    # feet 3.6 m apart (a 24 px square + a 12 px gap, one above the other) for the whole 3 s clip; a third
    # square stands 6 m or more away
    video = write_moving(
        tmp_path / "pair.mp4",
        30,
        [lambda i: (4 + 2 * i, 10), lambda i: (4 + 2 * i, 10 + SQUARE + 12), lambda i: (100, 90)],
    )
    document = analyse(video, Calibration.from_points(**TOP_DOWN), distance_m=4.0, min_seconds=2.0)
    contacts = document["contacts"]
    assert contacts["count"] == 1 and contacts["people_in_contact"] == 2
    (contact,) = contacts["contacts"]
    ids = sorted({t for f in document["frames"] for t in f["Human"]["track_ids"] if t > 0})
    assert len(ids) == 3 and contact["people"] == ids[:2]
    # seen from frame 1 (0 s; the track is confirmed on frame 2 and given its first sighting), together to frame 30
    # (2.9 s): 3.0 s with the last frame's 0.1 s
    assert (contact["start_s"], contact["end_s"], contact["duration_s"]) == (0.0, 2.9, 3.0)
    assert contact["min_distance_m"] == pytest.approx(3.6, abs=0.05)  # 24 px square + 12 px gap, feet to feet
    assert (contact["first_frame"], contact["last_frame"]) == (1, 30)
    # within 3.5 m they never are; nor together for more than 3 s
    assert analyse(video, Calibration.from_points(**TOP_DOWN), distance_m=3.5)["contacts"]["count"] == 0
    assert (
        analyse(video, Calibration.from_points(**TOP_DOWN), distance_m=4.0, min_seconds=3.1)["contacts"]["count"] == 0
    )


def test_people_who_pass_each_other_briefly_are_no_contact(tmp_path: Path) -> None:
    # one walks right, one left, on the same row: within 1.5 m for well under 2 s
    video = write_moving(tmp_path / "cross.mp4", 30, [lambda i: (4 + 4 * i, 10), lambda i: (132 - 4 * i, 60)])
    document = analyse(video, Calibration.from_points(**TOP_DOWN), distance_m=5.5, min_seconds=2.0)
    assert document["contacts"]["count"] == 0
    assert (
        analyse(video, Calibration.from_points(**TOP_DOWN), distance_m=5.5, min_seconds=0.2)["contacts"]["count"] == 1
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"image": [[0, 0], [1, 0], [1, 1]], "ground": [[0, 0], [1, 0], [1, 1]]}, "has 3 point pairs"),
        ({"image": [[0, 0], [10, 0], [20, 0], [30, 0]], "ground": [[0, 0], [1, 0], [1, 1], [0, 1]]}, "collinear"),
        ({"image": [[0, 0], [10, 0], [20, 0], [0, 10]], "ground": [[0, 0], [1, 0], [1, 1], [0, 1]]}, "collinear"),
        ({"image": [[0, 0], [10, 0], [10, 10], [0, 10]], "ground": [[0, 0], [1, 0]]}, "4 image points but 2"),
        ({"points": []}, "'image' and 'ground'"),
        ({"image": [[0, "a"]], "ground": [[0, 0]]}, "pairs of numbers"),
    ],
)
def test_bad_calibrations_are_refused(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Calibration.load(calibration_file(tmp_path, data))


def test_no_calibration_no_contacts_and_a_bad_one_fails_before_analysis(
    tmp_path: Path, video_factory, fake_detectors
) -> None:
    from crowdcount.detectors import build_detector

    processors = build_processors(DEFAULTS["tracking"], [build_detector("squares")])
    assert [p.name for p in processors] == ["scenery", "tracking"]
    video = video_factory("clip.mp4", frames=10)
    out = tmp_path / "out.json"
    bad = calibration_file(tmp_path, {"image": [[0, 0], [1, 0], [1, 1]], "ground": [[0, 0], [1, 0], [1, 1]]})
    code, _, err = run_cli("analyze", str(video), "-d", "squares", "-o", str(out), "--calibration", str(bad))
    assert code == 2 and err.count("\n") == 1 and "needs at least 4" in err
    assert not out.exists()
    code, _, err = run_cli("analyze", str(video), "-d", "squares", "-o", str(out), "--calibration", "/nope.json")
    assert code == 2 and "does not exist" in err and not out.exists()
    good = calibration_file(tmp_path, TOP_DOWN)
    code, stdout, err = run_cli("analyze", str(video), "-d", "squares", "-o", str(out), "--calibration", str(good))
    assert code == 0, err
    document = json.loads(out.read_text())
    assert document["contacts"]["count"] == 0 and "close contacts" in stdout


def test_every_contact_of_a_group_runs_to_its_own_last_frame(tmp_path: Path) -> None:
    # three people walking abreast (feet 3.6 m and 7.2 m apart) for 3 s: three contacts open at once, all to frame 30
    video = write_moving(
        tmp_path / "group.mp4",
        30,
        [
            lambda i: (4 + 2 * i, 10),
            lambda i: (4 + 2 * i, 10 + SQUARE + 12),
            lambda i: (4 + 2 * i, 10 + 2 * (SQUARE + 12)),
        ],
    )
    document = analyse(video, Calibration.from_points(**TOP_DOWN), distance_m=8.0, min_seconds=2.0)
    contacts = document["contacts"]["contacts"]
    assert [c["people"] for c in contacts] == [[1, 2], [1, 3], [2, 3]]
    assert [(c["first_frame"], c["last_frame"]) for c in contacts] == [(1, 30)] * 3
    assert [c["end_s"] for c in contacts] == [2.9] * 3


def test_contacts_without_a_human_detector_say_so() -> None:
    from conftest import FaceSquareDetector

    calibration = Calibration.from_points(**TOP_DOWN)
    with pytest.raises(ConfigError) as err:  # faces alone: nobody is tracked, whatever --track says
        build_processors(DEFAULTS["tracking"], [FaceSquareDetector()], calibration=calibration)
    assert str(err.value) == (
        "close contacts need tracked people, but no Human detector runs (run the Human detector with tracking on)"
    )
    with pytest.raises(ConfigError) as err:
        build_processors({**DEFAULTS["tracking"], "enabled": False}, [SquareDetector()], calibration=calibration)
    assert str(err.value) == "close contacts need tracked people, but tracking is off (drop --no-track)"
