"""``crowdcount detectors`` lists every registered detector, also one registered without a docstring."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from crowdcount.detectors import DETECTORS, Detections, Detector

from conftest import run_cli


class Undocumented(Detector):
    category = "Vehicle"
    name = "undocumented"

    def _load(self) -> None:
        pass

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections.empty() for _ in frames]

    def model_info(self) -> dict[str, Any]:
        return {}


Undocumented.__doc__ = None


@pytest.mark.usefixtures("keep_logging")
def test_a_detector_without_a_docstring_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DETECTORS, "undocumented", Undocumented)
    code, out, err = run_cli("detectors", "--json")
    assert (code, err) == (0, "")
    entry = next(e for e in json.loads(out) if e["name"] == "undocumented")
    assert entry == {
        "name": "undocumented",
        "aliases": [],
        "category": "Vehicle",
        "arguments": {"min_detection_score": 0.5, "max_batch_size": 8},
        "default_model": {},
        "description": "",
    }
    code, out, err = run_cli("detectors")
    assert (code, err) == (0, "")
    assert "undocumented" in out
