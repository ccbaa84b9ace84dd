"""The zoom rule (crowdcount/detectors/zoom.py): when probes turn it on and off, and what each frame runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdcount.detectors.zoom import ZoomSettings, ZoomState, extras


def boxes(*rows: tuple[float, float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(rows, np.float32).reshape(-1, 5)
    return array[:, :4], array[:, 4]


#: two people of 200 px the normal pass finds; the zoomed pass finds them and three small ones at rows 200-260
NORMAL = boxes((100, 300, 180, 500, 0.9), (300, 300, 380, 500, 0.8))
ZOOMED = boxes(
    (100, 300, 180, 500, 0.9),
    (300, 300, 380, 500, 0.8),
    (500, 200, 520, 250, 0.6),
    (600, 205, 620, 255, 0.5),
    (700, 210, 720, 260, 0.4),
    (800, 210, 820, 260, 0.1),
)


def state(**settings: float) -> ZoomState:
    return ZoomState((960, 540), 100.0, 0.25, ZoomSettings(probe_every=3, window=2, **settings))


def test_extras_are_small_boxes_only_the_zoomed_pass_counts() -> None:
    found = extras(NORMAL, ZOOMED, 0.25, 100.0)
    assert found[:, 0].tolist() == [500, 600, 700]
    # a counted normal box covers a zoomed one; a weaker one does not (the zoom makes that person count)
    for score, left in ((0.3, [600, 700]), (0.2, [500, 600, 700])):
        normal = (np.concatenate([NORMAL[0], [[500, 200, 520, 250]]]), np.concatenate([NORMAL[1], [score]]))
        assert extras(normal, ZOOMED, 0.25, 100.0)[:, 0].tolist() == left
    assert len(extras(NORMAL, ZOOMED, 0.25, 40.0)) == 0


def test_probes_turn_the_zoom_on_and_off_with_hysteresis() -> None:
    zoom = state(on_people=2.0, on_ratio=0.5)
    assert [zoom.plan() for _ in range(3)] == ["probe", None, None]  # off between probes
    zoom.learn(NORMAL, ZOOMED)  # 3 extras, 2 counted: on
    assert zoom.on
    assert [zoom.plan() for _ in range(3)] == ["probe", "zoom", "zoom"]  # every third frame is a probe
    # one probe with 1 extra: mean 2 over the window of 2 probes, above half the on level: stays on
    one = (ZOOMED[0][:3], ZOOMED[1][:3])
    zoom.learn(NORMAL, one)
    assert zoom.on
    zoom.learn(NORMAL, NORMAL)  # window (1, 0): mean 0.5 < 1: off
    assert not zoom.on
    assert [zoom.plan() for _ in range(3)] == ["probe", None, None]


def test_the_ratio_to_the_count_matters_too() -> None:
    zoom = state(on_people=2.0, on_ratio=2.0)  # 3 extras are not twice the 2 people counted
    zoom.learn(NORMAL, ZOOMED)
    assert not zoom.on


def test_settings_checks() -> None:
    with pytest.raises(ValueError, match="factor"):
        ZoomSettings(factor=1.0)
    with pytest.raises(ValueError, match="probe_every"):
        ZoomSettings(probe_every=0)
    with pytest.raises(ValueError, match="max_pixels"):
        ZoomSettings(max_pixels=10)


def test_the_human_detector_takes_zoom_as_a_boolean_and_records_it() -> None:
    from crowdcount.detectors.human import HumanDetector

    with pytest.raises(ValueError, match="zoom must be true or false"):
        HumanDetector(zoom="yes")  # type: ignore[arg-type]
    detector = HumanDetector(zoom=True)
    assert detector.arguments()["zoom"] is True
    assert HumanDetector(preset="fast", zoom=True).zoom is False  # NanoDet presets do not zoom


def test_the_zoomed_input_is_the_frame_at_2x_within_its_cap_and_skipped_where_it_would_not_enlarge() -> None:
    from crowdcount.detectors.human import HumanDetector

    detector = HumanDetector(zoom=True)  # no model is loaded to plan
    zoom = detector._zoom_for(960, 540, (1440, 800))
    assert zoom is not None and zoom[1] == (1920, 1088) and zoom[0].small_height == 100.0
    assert detector._zoom_for(960, 540, (1440, 800)) is zoom  # one decision per video
    big = detector._zoom_for(2560, 1440, (1920, 1088))  # capped at twice 1920x1080 pixels
    assert big is not None and big[1] == (2720, 1536)
    assert detector._zoom_for(100, 100, (288, 288)) is None  # tiny frames are upscaled to the minimum anyway


@pytest.mark.real_model
@pytest.mark.needs_data
def test_small_people_of_an_hd_street_turn_the_zoom_on(shared_data: Path) -> None:
    """MOT17-13 (a street seen from a bus, 960x540, most people under 50 px): the first frame's probe finds
    people only the zoomed pass counts, so the next frames run the frame at 2x and count at least one more
    person a frame than the 1.5x pass alone."""
    pytest.importorskip("openvino")
    import cv2

    from crowdcount.detectors.human import HumanDetector

    clip = shared_data / "crowds" / "MOT17-13-SDP-raw.h265"
    if not clip.is_file():
        pytest.skip(f"{clip} not in the shared data")
    capture = cv2.VideoCapture(str(clip))
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(8)]
    capture.release()
    plain, zoomed = HumanDetector(num_threads=2, zoom=False), HumanDetector(num_threads=2)  # zoom is the default
    counts = [(len(plain.detect([f])[0]), len(zoomed.detect([f])[0])) for f in frames]
    assert zoomed._zoom is not None
    state, size = zoomed._zoom
    assert state.on and size == (1920, 1088)
    assert sum(z for _, z in counts[1:]) >= sum(p for p, _ in counts[1:]) + len(counts) - 1
    zoomed.reset()
    assert zoomed._zoom is None
