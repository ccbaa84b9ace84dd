"""build_pipeline: one assembly, fixed stages (scenery -> track -> count -> identify -> annotate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdcount.analyzer.counting import parse_lines
from crowdcount.analyzer.pipeline import PipelineOverrides, build_pipeline
from crowdcount.analyzer.processors import FrameProcessor
from crowdcount.config import load_config
from crowdcount.errors import ConfigError


class Identify(FrameProcessor):
    name = "faces"

    def __init__(self, location: str) -> None:
        self.location = location

    def process(self, frame: Any, image: np.ndarray) -> None:
        pass

    def finish(self) -> dict[str, Any]:
        return {"gallery": self.location}


@pytest.mark.usefixtures("fake_detectors")
def test_stages_come_in_order_and_a_gallery_brings_the_face_detector(tmp_path: Path) -> None:
    config = load_config(
        None,
        environ={},
        overrides={
            "human_detection": {"detectors": [["squares", {}]]},
            "faces": {"gallery": str(tmp_path / "people.json")},
        },
    )
    opened: list[str] = []

    def galleries(location: str) -> FrameProcessor:
        opened.append(location)
        return Identify(location)

    pipeline = build_pipeline(
        config,
        PipelineOverrides(lines=parse_lines(["door=80,0,80,120"]), annotate=lambda info: tmp_path / "a.mp4"),
        galleries,
    )
    assert [p.name for p in pipeline.processors] == ["scenery", "tracking", "counting", "faces", "annotate"]
    assert [d.category for d in pipeline.detectors] == ["Human", "Face"] and opened == [str(tmp_path / "people.json")]
    assert pipeline.identifier is pipeline.processors[3] and pipeline.detector("Face") is pipeline.detectors[1]
    analyzer = pipeline.analyzer()
    assert analyzer.frame_ratio == config["human_detection"]["frame_ratio"]

    override = build_pipeline(config, PipelineOverrides(detectors=[["squares", {}]], gallery="other.json"), galleries)
    assert opened[-1] == "other.json" and override.identifier is not None


@pytest.mark.usefixtures("fake_detectors")
def test_without_a_gallery_there_is_no_identify_stage_and_no_opener_is_needed() -> None:
    config = load_config(None, environ={}, overrides={"human_detection": {"detectors": [["squares", {}]]}})
    pipeline = build_pipeline(config)
    assert [p.name for p in pipeline.processors] == ["scenery", "tracking"] and pipeline.identifier is None
    gallery = config.with_overrides({"faces": {"gallery": "people.json"}})
    with pytest.raises(ConfigError, match="needs a gallery opener"):
        build_pipeline(gallery)
