"""Fakes of the face tests: photos and videos of coloured squares, an embedder that sees their colour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crowdcount.detectors.base import Detections
from crowdcount.detectors.embedders import FaceEmbedder

#: RGB colours of the fake people (all channels > 128: the square detector finds them).
COLOURS = {"alice": (255, 150, 150), "bob": (150, 255, 150), "carol": (150, 150, 255), "dave": (255, 255, 150)}


class ColourEmbedder(FaceEmbedder):
    """A fake embedder: a face's vector is the mean colour of its box, centred (one colour, one person)."""

    name = "colour"
    dim = 3
    match_threshold = 0.9
    cluster_threshold = 0.95

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def _load(self) -> None:
        self.loads += 1

    def _embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        out = []
        for x0, y0, x1, y1 in faces.xyxy.astype(int):
            patch = image[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].reshape(-1, 3).astype(np.float32)
            out.append(patch.mean(axis=0) - 128)
        return np.array(out)

    def model_info(self) -> dict[str, Any]:
        return {"name": "colour", "source": "tests"}


def write_photo(path: Path, colours: list[tuple[int, int, int]], size: tuple[int, int] = (160, 120)) -> Path:
    """A photo (BGR file) with one 24x24 square per colour, side by side."""
    image = np.zeros((size[1], size[0], 3), np.uint8)
    for k, rgb in enumerate(colours):
        x = 8 + k * 36
        image[40:64, x : x + 24] = rgb[::-1]
    cv2.imwrite(str(path), image)
    return path


def write_people_video(path: Path, timeline: list[list[str]], fps: float = 10.0) -> Path:
    """A video whose frame ``i`` shows the squares of the people in ``timeline[i]`` (lossless-ish: PNG codec)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"png "), fps, (160, 120))
    assert writer.isOpened()
    for people in timeline:
        image = np.zeros((120, 160, 3), np.uint8)
        for k, name in enumerate(people):
            x = 8 + k * 36
            image[40:64, x : x + 24] = COLOURS[name][::-1]
        writer.write(image)
    writer.release()
    return path
