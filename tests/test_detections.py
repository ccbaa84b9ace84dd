from __future__ import annotations

import numpy as np
import pytest

from crowdcount.detectors import Detections


def test_detections_are_coerced_to_typed_arrays() -> None:
    d = Detections([[1, 2, 3, 4]], [0.5], [1])
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (1, 4)
    assert d.confidence.dtype == np.float32 and d.class_id.dtype == np.int32
    assert len(d) == 1


def test_empty_detections() -> None:
    d = Detections.empty()
    assert len(d) == 0
    assert d.xyxy.shape == (0, 4)
    assert d.normalized_yxyx(100, 50).shape == (0, 4)


@pytest.mark.parametrize(
    ("xyxy", "conf", "cls", "message"),
    [
        ([[0, 0, 1, 1]], [0.5, 0.6], [1], "disagree in length"),
        ([[5, 0, 1, 1]], [0.5], [1], "x_max >= x_min"),
        ([[0, 0, 1, 1]], [1.5], [1], r"\[0, 1\]"),
        ([[0, np.nan, 1, 1]], [0.5], [1], "finite"),
    ],
)
def test_invalid_detections_are_rejected(xyxy: list, conf: list, cls: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(xyxy, conf, cls)


def test_masking_and_normalised_boxes() -> None:
    d = Detections([[0, 0, 10, 20], [50, 25, 100, 50]], [0.2, 0.9], [1, 1], {"extra": np.array([7, 8])})
    kept = d[d.confidence > 0.5]
    assert len(kept) == 1
    assert kept.data["extra"].tolist() == [8]
    np.testing.assert_allclose(kept.normalized_yxyx(100, 50), [[0.5, 0.5, 1.0, 1.0]])
