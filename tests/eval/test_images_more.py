"""``eval --gt faces.xml``: images are decoded one at a time (a large set does not sit in memory at once), yet
a missing or unreadable image is still reported before the detector runs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import crowdcount.eval.runner as runner
from crowdcount.errors import ConfigError

from conftest import SquareDetector


def images(tmp_path: Path, n: int = 3) -> list[str]:
    paths = []
    for i in range(n):
        image = np.zeros((60, 80, 3), np.uint8)
        image[10:40, 10:40] = 255
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(str(path))
    return paths


def test_images_are_read_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    read = runner.read_rgb
    monkeypatch.setattr(runner, "read_rgb", lambda path: reads.append(str(path)) or read(path))
    detector = SquareDetector()
    detector.check_rgb = False
    seen: list[int] = []
    detect = detector.detect
    monkeypatch.setattr(detector, "detect", lambda frames: seen.append(len(reads)) or detect(frames))
    paths = images(tmp_path)
    run = runner.detect_images(paths, detector)
    assert seen == [1, 2, 3] and reads == paths
    assert [len(run.detections[p][0]) for p in paths] == [1, 1, 1]


@pytest.mark.parametrize("damage", ["missing", "not an image"])
def test_a_bad_image_is_reported_before_the_detector_runs(tmp_path: Path, damage: str) -> None:
    paths = images(tmp_path)
    bad = Path(paths[1])
    if damage == "missing":
        bad.unlink()
    else:
        bad.write_bytes(b"not a png")
    detector = SquareDetector()
    with pytest.raises(ConfigError) as error:
        runner.detect_images(paths, detector)
    assert str(error.value) == f"image {str(bad)!r} cannot be read (check the paths in the imglab XML file)"
    assert detector.batches == [] and detector.loads == 0
