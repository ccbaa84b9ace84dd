"""The zoom rule (crowdcount/detectors/zoom.py): when probes turn it on and off, the band it zooms, and how
zoomed boxes merge with the normal pass's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdcount.detectors.zoom import ZoomSettings, ZoomState, extras, merge, nms


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
    return ZoomState(960, 540, 1.0, 100.0, 0.25, ZoomSettings(probe_every=3, window=2, **settings))


def test_extras_are_small_boxes_only_the_zoomed_pass_counts() -> None:
    found = extras(NORMAL, ZOOMED, 0.25, 100.0)
    assert found[:, 0].tolist() == [500, 600, 700]
    # a counted normal box covers a zoomed one; a weaker one does not (the zoom makes that person count)
    for score, left in ((0.3, [600, 700]), (0.2, [500, 600, 700])):
        normal = (np.concatenate([NORMAL[0], [[500, 200, 520, 250]]]), np.concatenate([NORMAL[1], [score]]))
        assert extras(normal, ZOOMED, 0.25, 100.0)[:, 0].tolist() == left
    assert len(extras(NORMAL, ZOOMED, 0.25, 40.0)) == 0


def test_probes_turn_the_zoom_on_over_a_band_and_off_with_hysteresis() -> None:
    zoom = state(on_people=2.0, on_ratio=0.5)
    plans = [zoom.plan() for _ in range(3)]
    assert plans[0] is not None and plans[0].probe and plans[0].crop == (0, 0, 960, 540) and plans[0].scale == 2.0
    assert plans[1] is None and plans[2] is None  # off between probes
    zoom.learn(NORMAL, ZOOMED)  # 3 extras, 2 counted: on
    assert zoom.on
    assert zoom.band() == (135, 337)  # rows 200-260 padded by 50, snapped to eighths of 540 (67.5)
    assert zoom.plan() == plans[0]  # every third frame is a probe of the whole frame
    between = zoom.plan()
    assert between is not None and not between.probe and between.crop == (0, 135, 960, 337)
    assert between.scale == 2.0
    # one probe with 1 extra: mean 2 over the window of 2 probes, above half the on level: stays on
    one = (ZOOMED[0][:3], ZOOMED[1][:3])
    zoom.learn(NORMAL, one)
    assert zoom.on
    zoom.learn(NORMAL, NORMAL)  # window (1, 0): mean 0.5 < 1: off
    assert not zoom.on


def test_a_tall_band_gets_a_smaller_zoom_within_the_cost_cap() -> None:
    zoom = state(on_people=1.0, on_ratio=0.0, max_cost=2.0)
    tall = boxes((100, 20, 120, 70, 0.9), (200, 470, 220, 520, 0.9))
    zoom.plan()
    zoom.learn(NORMAL, tall)
    plan = zoom.plan()
    assert plan is not None and plan.crop == (0, 0, 960, 540)
    assert plan.scale == pytest.approx(np.sqrt(2.0))


def test_merge_keeps_small_zoomed_boxes_inside_the_band_and_suppresses_duplicates() -> None:
    zoomed = boxes(
        (102, 302, 178, 498, 0.95),  # the first person again, too tall to take from the zoom
        (500, 200, 520, 250, 0.6),  # small: taken
        (501, 201, 521, 251, 0.3),  # its duplicate: suppressed
        (600, 136, 620, 180, 0.7),  # cut by the band's top edge (135): left out
    )
    merged_boxes, merged_scores = merge(NORMAL, zoomed, (0, 135, 960, 337), (960, 540), 100.0)
    assert merged_scores.tolist() == pytest.approx([0.9, 0.8, 0.6])
    assert merged_boxes[2].tolist() == [500, 200, 520, 250]


def test_nms_and_settings_checks() -> None:
    kept = nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0.5, 0.9, 0.1]), 0.5)
    assert kept.tolist() == [1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match="factor"):
        ZoomSettings(factor=1.0)


def test_the_human_detector_takes_zoom_as_a_boolean_and_records_it() -> None:
    from crowdcount.detectors.human import HumanDetector

    with pytest.raises(ValueError, match="zoom must be true or false"):
        HumanDetector(zoom="yes")  # type: ignore[arg-type]
    detector = HumanDetector(zoom=True)
    assert detector.arguments()["zoom"] is True
    assert HumanDetector(preset="fast", zoom=True).zoom is False  # NanoDet presets do not zoom


@pytest.mark.real_model
@pytest.mark.needs_data
def test_small_people_of_an_hd_street_turn_the_zoom_on(shared_data: Path) -> None:
    """MOT17-13 (a street seen from a bus, 960x540, most people under 50 px): the first frame's probe finds
    people only the zoomed pass counts, so the next frames run the zoomed band and count at least one more
    person a frame than the 1.5x pass alone (measured: 1-2 more)."""
    pytest.importorskip("openvino")
    import cv2

    from crowdcount.detectors.human import HumanDetector

    clip = shared_data / "crowds" / "MOT17-13-SDP-raw.h265"
    if not clip.is_file():
        pytest.skip(f"{clip} not in the shared data")
    capture = cv2.VideoCapture(str(clip))
    frames = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(8)]
    capture.release()
    plain, zoomed = HumanDetector(num_threads=2), HumanDetector(num_threads=2, zoom=True)
    counts = [(len(plain.detect([f])[0]), len(zoomed.detect([f])[0])) for f in frames]
    state = zoomed._zoom
    assert state is not None and state.on
    y0, y1 = state.band()
    assert 0 < y1 - y0 < 540  # a band, not the whole frame
    assert sum(z for _, z in counts[1:]) >= sum(p for p, _ in counts[1:]) + len(counts) - 1
    zoomed.reset()
    assert zoomed._zoom is None
