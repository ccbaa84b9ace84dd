"""Enrolment: photos of a person -> one face embedding per photo, checked (exactly one face per photo)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdcount.detectors.base import Detector
from crowdcount.detectors.embedders import FaceEmbedder
from crowdcount.errors import PhotoError

logger = logging.getLogger(__name__)

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def read_photo(path: Path) -> np.ndarray:
    """An RGB ``uint8`` image; :class:`PhotoError` when it is missing or not an image."""
    import cv2

    if not path.is_file():
        raise PhotoError(f"{path}: no such file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PhotoError(f"{path}: not an image OpenCV can read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def photos_in(folder: Path) -> list[Path]:
    """The photos directly in ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def expand_photos(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders replaced by the photos in them."""
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        out.extend(photos_in(path) if path.is_dir() else [path])
    return out


def people_folder(folder: Path) -> dict[str, list[Path]]:
    """``NAME/*.jpg`` subfolders of ``folder`` -> photos per name (folders without photos are skipped)."""
    people = {sub.name: photos_in(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
    return {name: photos for name, photos in people.items() if photos}


@dataclass(frozen=True)
class PhotoFace:
    """The one face of an enrolment photo."""

    path: Path
    embedding: np.ndarray
    box: tuple[float, float, float, float]
    score: float


class Enroller:
    """Finds the one face of each enrolment photo and embeds it."""

    def __init__(self, detector: Detector, embedder: FaceEmbedder) -> None:
        self.detector = detector
        self.embedder = embedder

    def face_of(self, path: Path) -> PhotoFace:
        """The face of one photo; :class:`PhotoError` when there is none, or more than one."""
        image = read_photo(path)
        faces = self.detector.detect([image])[0]
        if len(faces) == 0:
            raise PhotoError(f"{path}: no face found", "use a photo where the face is clearly visible")
        if len(faces) > 1:
            raise PhotoError(f"{path}: {len(faces)} faces found, expected one", "crop the photo to the person to enrol")
        vector = self.embedder.embed(image, faces)[0]
        x0, y0, x1, y1 = (float(v) for v in faces.xyxy[0])
        return PhotoFace(path, vector, (x0, y0, x1, y1), float(faces.confidence[0]))

    def faces_of(self, paths: Sequence[Path]) -> list[PhotoFace]:
        """Every photo's face; when any photo fails, one :class:`PhotoError` naming every failing photo (so
        that nothing is enrolled from a half-good set)."""
        if not paths:
            raise PhotoError("no photos given", "give image files, or a folder of them")
        faces, problems = [], []
        for path in paths:
            try:
                faces.append(self.face_of(path))
            except PhotoError as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise PhotoError(
                f"{len(problems)} of {len(paths)} photos cannot be enrolled: " + "; ".join(p.message for p in problems),
                "nothing was enrolled; use photos showing exactly one face",
            )
        return faces
