"""Zooming in where people are small: the input scale chosen from the people in the frame, per video.

A person detector finds people down to a size set by its smallest anchors (person-detection-0203: 45x90
pixels of its input); smaller people score too low to count. Upscaling every frame more finds them at several
times the compute, and is wasted (and costs precision: posts and bags become small people) on scenes whose
people are all large. So the zoom is chosen from the frame and the people in it, per video, by measuring what
it would add:

- every ``probe_every``-th frame (a *probe*) runs the model on the whole frame upscaled ``factor`` times as
  well as at the normal scale; the people the zoomed pass counts that the normal pass does not (*extras*:
  small boxes at the threshold with no counted normal box near them) are remembered over the last ``window``
  probes;
- zooming is **on** while the probes find on average at least ``on_people`` extras a frame and at least
  ``on_ratio`` of the normal count, and turns **off** only when that falls under half of both (hysteresis:
  the choice stays put within a video);
- while on, every frame runs at the zoomed scale instead of the normal one (probes run both, to keep
  measuring).

The zoomed input is the frame's own size times ``factor``, capped at ``max_pixels`` (the detector skips the
zoom for frames whose zoomed input would not be at least 1.2 times the normal one in each dimension).

Why the whole frame and not the band of rows the small people stand in: the model loses people when its
input is a thin strip (measured in docs/accuracy.md: a 2x band of MOT17-13 finds 6-13 people where the whole
frame at 2x finds 8-17), and a band padded until it does not costs about what the whole frame costs.

This module knows nothing of the model: :class:`ZoomState` plans each frame's passes and learns from probes;
the detector runs them.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from crowdcount.detectors.base import iou_matrix

logger = logging.getLogger(__name__)

#: What a frame runs: the normal pass only (None), both passes (``probe``), the zoomed pass only (``zoom``).
Step = Literal["probe", "zoom"] | None


@dataclass(frozen=True)
class ZoomSettings:
    """How the zoom is chosen (module docstring)."""

    factor: float = 2.0
    probe_every: int = 15
    window: int = 8
    on_people: float = 1.5
    on_ratio: float = 0.1
    #: the zoomed pass's input is at most this many pixels (twice the normal pass's default cap)
    max_pixels: int = 2 * 1920 * 1080

    def __post_init__(self) -> None:
        if not 1.0 < self.factor <= 4.0:
            raise ValueError(f"zoom factor must be in (1, 4], got {self.factor!r}")
        if self.probe_every < 1 or self.window < 1:
            raise ValueError("zoom probe_every and window must be >= 1")
        if self.max_pixels < 32 * 32:
            raise ValueError(f"zoom max_pixels must be at least 1024, got {self.max_pixels!r}")


@dataclass
class ZoomState:
    """Per-video zoom decision for frames of one size (see the module docstring).

    Args:
        size: the frame size ``(width, height)`` (for the log).
        small_height: extras are zoomed boxes shorter than this (frame pixels).
        threshold: the score at which a person counts.
    """

    size: tuple[int, int]
    small_height: float
    threshold: float
    settings: ZoomSettings = field(default_factory=ZoomSettings)
    frames: int = 0
    on: bool = False
    #: per probe: extras found, people counted by the normal pass
    probes: deque[tuple[int, int]] = field(default_factory=deque)

    def plan(self) -> Step:
        """What the next frame runs (counts the frame)."""
        index = self.frames
        self.frames += 1
        if index % self.settings.probe_every == 0:
            return "probe"
        return "zoom" if self.on else None

    def learn(self, normal: tuple[np.ndarray, np.ndarray], zoomed: tuple[np.ndarray, np.ndarray]) -> None:
        """Update the decision from a probe: the normal pass's boxes and scores and the zoomed pass's."""
        s = self.settings
        found = extras(normal, zoomed, self.threshold, self.small_height)
        counted = int(np.sum(normal[1] >= self.threshold))
        self.probes.append((len(found), counted))
        while len(self.probes) > s.window:
            self.probes.popleft()
        extra = float(np.mean([p[0] for p in self.probes]))
        count = float(np.mean([p[1] for p in self.probes]))
        was = self.on
        if self.on:
            self.on = extra >= 0.5 * s.on_people and extra >= 0.5 * s.on_ratio * count
        else:
            self.on = extra >= s.on_people and extra >= s.on_ratio * count
        if self.on != was:
            logger.info(
                "zoom %s for %dx%d frames: %.1f people a frame only found zoomed in (of %.1f)",
                "on" if self.on else "off",
                *self.size,
                extra,
                count,
            )


def extras(
    normal: tuple[np.ndarray, np.ndarray], zoomed: tuple[np.ndarray, np.ndarray], threshold: float, small: float
) -> np.ndarray:
    """Boxes ``(K, 4)`` of the zoomed pass that count (score >= ``threshold``, shorter than ``small``) and that
    no counted box of the normal pass overlaps (IoU >= 0.3): people only the zoom counts."""
    (nb, ns), (zb, zs) = normal, zoomed
    zb = zb[(zs >= threshold) & ((zb[:, 3] - zb[:, 1]) < small)]
    nb = nb[ns >= threshold]
    if not len(zb) or not len(nb):
        return zb
    return zb[iou_matrix(zb, nb).max(axis=1) < 0.3]
