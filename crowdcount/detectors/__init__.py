"""Detectors: models that find people or faces in RGB frames. They know nothing of videos or clouds.

Every detector returns :class:`Detections`; :func:`build_detector` builds one by name from
:data:`DETECTORS`. Models load lazily, never at import time.
"""

from __future__ import annotations

from crowdcount.detectors.base import Detections, Detector
from crowdcount.detectors.registry import ALIASES, DETECTORS, build_detector, detector_parameters, resolve_name

__all__ = [
    "ALIASES",
    "DETECTORS",
    "Detections",
    "Detector",
    "build_detector",
    "detector_parameters",
    "resolve_name",
]
