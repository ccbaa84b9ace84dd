"""What the annotated video draws: labels inside the picture and below the header, a header that fits the frame
and says what its numbers are, faces distinguishable from people (the same drawing serves the live dashboard)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import crowdcount.analyzer.annotate as annotate
from crowdcount.analyzer.annotate import (
    FACE_COLOUR,
    AnnotateProcessor,
    draw_boxes,
    draw_lines,
    fit_text,
    frame_scale,
    header_height,
    pack_lines,
    text_size,
)
from crowdcount.analyzer.runner import FrameResult
from crowdcount.analyzer.tracking import TRACK_ID
from crowdcount.detectors import Detections


def people(boxes: list[list[float]], ids: list[int] | None = None) -> Detections:
    n = len(boxes)
    data = {} if ids is None else {TRACK_ID: np.array(ids, np.int64)}
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(n, 0.9), np.ones(n), data)


@pytest.mark.parametrize("org", [(-50, -50), (470, 5), (470, 400), (0, 0), (100, 30), (-10, 359)])
@pytest.mark.parametrize("scale", [0.4, 0.5, 1.2])
def test_fitted_text_lies_inside_the_frame_and_below_the_header(org: tuple[int, int], scale: float) -> None:
    label = "door: in 12 / out 7"
    x, y = fit_text(label, org, scale, (360, 480), top=40)
    width, height, baseline = text_size(label, scale)
    assert x >= 0 and x + width <= 480
    assert y - height >= 40 and y + baseline <= 360


def test_a_fitted_label_stays_where_it_was_put_when_it_fits() -> None:
    assert fit_text("#3", (200, 150), 0.5, (360, 480), top=40) == (200, 150)


def test_header_lines_fit_the_width_of_a_small_frame() -> None:
    parts = ["in frame: Human 12, Face 3", "tracked now: 11", "tracks so far: 140", "door: in 12 / out 7", "frame 9"]
    for width in (320, 480, 960):
        lines = pack_lines(parts, frame_scale(width * 3 // 4), width)
        assert all(text_size(line, frame_scale(width * 3 // 4))[0] + 6 <= width for line in lines)
        assert " ".join(lines).split() == " ".join(parts).split()  # nothing lost, in order
    assert len(pack_lines(parts, 0.5, 2000)) == 1


def test_a_label_of_a_box_at_the_top_edge_is_drawn_below_the_header_band() -> None:
    canvas = np.zeros((360, 480, 3), np.uint8)
    draw_boxes(canvas, "Human", people([[200, 0, 260, 120]], ids=[7]), 0.5, top=40)
    band = canvas[3:40].any(axis=2)  # under the band only the box's own sides may be drawn
    columns = np.flatnonzero(band.any(axis=0))
    assert set(columns) <= {199, 200, 201, 259, 260, 261}
    assert canvas[41:80, 203:240].any()  # the "#7" is below the band, inside the box


def test_a_label_of_a_box_at_the_right_edge_stays_in_the_frame() -> None:
    canvas = np.zeros((360, 480, 3), np.uint8)
    draw_boxes(canvas, "Human", people([[470, 100, 479, 200]], ids=[1234]), 0.5)
    width = text_size("#1234", 0.5)[0]
    assert canvas[80:100, 479 - width : 470].any()  # drawn left of the box, not cut off at the edge


def test_faces_are_white_thin_and_unlabelled() -> None:
    canvas = np.zeros((360, 480, 3), np.uint8)
    draw_boxes(canvas, "Face", people([[100, 100, 140, 150]]), 0.5)
    drawn = canvas.reshape(-1, 3)[canvas.reshape(-1, 3).any(axis=1)]
    assert {tuple(int(v) for v in c) for c in drawn} == {FACE_COLOUR}
    assert not canvas[:99].any() and not canvas[102:149, 102:139].any()  # no text above, nothing inside


def test_a_line_label_never_leaves_the_frame() -> None:
    canvas = np.zeros((360, 480, 3), np.uint8)
    draw_lines(canvas, [("exit", np.array([[0.0, 359.0], [479.0, 359.0]]))], 0.5, top=30)
    assert not canvas[:30].any()
    assert canvas[300:355].any()  # the name is drawn above the bottom edge


def test_the_header_says_what_each_number_is_and_holds_the_line_and_zone_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counting = SimpleNamespace(
        pixel_geometry=lambda: ([("door", np.array([[240.0, 100.0], [240.0, 359.0]]))], []),
        current=lambda: {"lines": {"door": (1, 2)}, "zones": {"left": 3}},
    )
    tracking = SimpleNamespace(live_count=lambda: 4, tracks_so_far=lambda: 9)
    processor = AnnotateProcessor(lambda video: None, tracking=tracking, counting=counting)  # type: ignore[arg-type]
    frame = FrameResult(
        31,
        3000.0,
        {
            "Human": people([[10, 100, 50, 200], [300, 100, 340, 200]], ids=[1, -1]),
            "Face": people([[20, 110, 30, 122]]),
        },
    )
    image = np.zeros((360, 480, 3), np.uint8)
    drawn = processor.draw(frame, image)
    assert drawn.shape == (360, 480, 3)
    texts: list[str] = []
    monkeypatch.setattr(annotate, "draw_header", lambda canvas, lines, scale: texts.extend(lines) or 0)
    processor.draw(frame, image)
    joined = "   ".join(texts)
    for part in ("in frame: Human 2, Face 1", "tracked now: 4", "tracks so far: 9", "door: in 1 / out 2",
                 "left: 3 in zone", "frame 31, 3.0 s", "grey: untracked", "white: faces"):  # fmt: skip
        assert part in joined
    assert header_height(len(texts), processor._scale) < 360 / 4


def test_a_known_face_gets_its_name_under_it_and_an_unknown_one_nothing() -> None:
    from crowdcount.faces.gallery import UNKNOWN

    assert annotate.UNKNOWN_NAME == UNKNOWN
    faces = people([[100, 100, 140, 150], [300, 100, 340, 150]])
    named = Detections(faces.xyxy, faces.confidence, faces.class_id, {"identity": np.array(["alice", UNKNOWN], object)})
    canvas = np.zeros((360, 480, 3), np.uint8)
    draw_boxes(canvas, "Face", named, 0.5)
    assert canvas[153:175, 100:160].any()  # "alice" under the first face
    assert not canvas[153:175, 295:360].any()  # nothing under the unknown one


def test_people_are_bright_without_tracking_and_grey_only_when_tracking_left_them_out() -> None:
    untracked, plain = np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160, 3), np.uint8)
    draw_boxes(untracked, "Human", people([[20, 20, 60, 100]], ids=[-1]), 0.5)
    draw_boxes(plain, "Human", people([[20, 20, 60, 100]]), 0.5)
    assert tuple(int(v) for v in untracked[60, 20]) == annotate.UNTRACKED
    assert tuple(int(v) for v in plain[60, 20]) == annotate.PERSON_COLOUR
