"""Zooming in where people are small: a second, upscaled pass over the band of the frame that holds them.

A person detector finds people down to a size set by its smallest anchors (person-detection-0203: 45x90
pixels of its input); smaller people score too low to count. Upscaling every frame finds them at several
times the compute, and is wasted on scenes whose people are all large. So the zoom is chosen from the frame
and the people in it, per video, by measuring what it would add:

- every ``probe_every``-th frame (a *probe*) also runs the model on the whole frame upscaled ``factor`` times;
  the people it counts that the normal pass does not (*extras*: small boxes at the threshold with no counted
  normal box near them) are remembered over the last ``window`` probes, with the band of rows they stand in;
- zooming is **on** while the probes find on average at least ``on_people`` extras a frame and at least
  ``on_ratio`` of the normal count, and turns **off** only when that falls under half of both (hysteresis:
  the choice stays put within a video);
- while on, every frame runs the upscaled pass over that band only (full width), capped at ``max_cost``
  times the pixels of the frame at its own size (the zoom factor shrinks to fit a tall band), and the
  detector runs its normal pass at the frame's own size (no upscaling): the compute goes to the band.

The factor is relative to the frame's own size (capped like the normal pass): with the default 1.5 times
upscaling of the normal pass, a zoom of 2 looks at people a third larger again.

The upscaled boxes are merged with the normal ones (:func:`merge`): only boxes smaller than ``small_height``
(frame pixels) and not cut by the band's edge are taken from it, then overlapping boxes are suppressed.
This module knows nothing of the model: :class:`ZoomState` plans each frame's passes and learns from probes;
the detector runs them.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from crowdcount.detectors.base import iou_matrix

logger = logging.getLogger(__name__)

#: The band of rows is snapped to this many steps of the frame's height.
BAND_STEPS = 8


@dataclass(frozen=True)
class ZoomSettings:
    """How the zoom is chosen (module docstring). Sizes are in frame pixels unless said."""

    factor: float = 2.0
    probe_every: int = 15
    window: int = 8
    on_people: float = 1.5
    on_ratio: float = 0.1
    max_cost: float = 2.5
    merge_iou: float = 0.5

    def __post_init__(self) -> None:
        if not 1.0 < self.factor <= 4.0:
            raise ValueError(f"zoom factor must be in (1, 4], got {self.factor!r}")
        if self.probe_every < 1 or self.window < 1:
            raise ValueError("zoom probe_every and window must be >= 1")
        if self.max_cost <= 0:
            raise ValueError(f"zoom max_cost must be positive, got {self.max_cost!r}")


@dataclass(frozen=True)
class Pass:
    """One upscaled pass: the crop ``(x0, y0, x1, y1)`` of the frame, resized by ``scale`` (frame pixels to
    network pixels; the network input is the crop's size times ``scale`` in multiples of 32)."""

    crop: tuple[int, int, int, int]
    scale: float
    probe: bool


@dataclass
class ZoomState:
    """Per-video zoom decision for frames of one size (see the module docstring).

    Args:
        width, height: the frame size.
        base_scale: the frame's own scale (network pixels per frame pixel without upscaling; the zoom factor
            and the cost cap are relative to it).
        small_height: boxes of the zoomed pass taller than this (frame pixels) are left to the normal pass.
        threshold: the score at which a person counts.
    """

    width: int
    height: int
    base_scale: float
    small_height: float
    threshold: float
    settings: ZoomSettings = field(default_factory=ZoomSettings)
    #: the normal pass's scale: a zoom less than 1.2 times it is not worth a pass
    pass_scale: float = 0.0
    frames: int = 0
    on: bool = False
    #: per probe: extras found, counted, top and bottom row of their band (None: no extra)
    probes: deque[tuple[int, int, float | None, float | None]] = field(default_factory=deque)

    def plan(self) -> Pass | None:
        """The upscaled pass for the next frame, or None (counts the frame)."""
        s = self.settings
        index = self.frames
        self.frames += 1
        scale = self.base_scale * s.factor
        if scale <= 1.2 * self.pass_scale:
            return None
        if index % s.probe_every == 0:
            return Pass((0, 0, self.width, self.height), scale, True)
        if not self.on:
            return None
        y0, y1 = self.band()
        budget = s.max_cost * self.width * self.height * self.base_scale**2
        scale = min(scale, float(np.sqrt(budget / max(1, self.width * (y1 - y0)))))
        if scale <= 1.2 * max(self.base_scale, self.pass_scale):
            return None
        return Pass((0, y0, self.width, y1), scale, False)

    def band(self) -> tuple[int, int]:
        """The rows the probes' extras stood in (padded by half their height), as ``(y0, y1)``."""
        tops = [t for _, _, t, _ in self.probes if t is not None]
        bottoms = [b for _, _, _, b in self.probes if b is not None]
        if not tops:
            return 0, self.height
        pad = 0.5 * self.small_height
        # snapped to eighths of the frame, so that few network input shapes occur (each is compiled once)
        step = self.height / BAND_STEPS
        y0 = int(np.floor(max(0.0, min(tops) - pad) / step) * step)
        y1 = int(min(self.height, np.ceil(min(float(self.height), max(bottoms) + pad) / step) * step))
        return y0, max(y1, y0 + 1)

    def learn(self, normal: tuple[np.ndarray, np.ndarray], zoomed: tuple[np.ndarray, np.ndarray]) -> None:
        """Update the decision from a probe: the normal pass's boxes and the whole-frame zoomed pass's."""
        s = self.settings
        found = extras(normal, zoomed, self.threshold, self.small_height)
        counted = int(np.sum(normal[1] >= self.threshold))
        top = float(found[:, 1].min()) if len(found) else None
        bottom = float(found[:, 3].max()) if len(found) else None
        self.probes.append((len(found), counted, top, bottom))
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
                self.width,
                self.height,
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


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, by descending score."""
    order = np.argsort(-scores, kind="stable")
    if not len(order):
        return order
    overlaps = iou_matrix(boxes[order], boxes[order])
    kept: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= overlaps[i] > iou
    return order[kept]


def merge(
    normal: tuple[np.ndarray, np.ndarray],
    zoomed: tuple[np.ndarray, np.ndarray],
    crop: tuple[int, int, int, int],
    frame_size: tuple[int, int],
    small: float,
    iou: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The normal pass's boxes plus the zoomed pass's small ones (in frame pixels), overlaps suppressed.

    A zoomed box is taken only if shorter than ``small`` and not cut by an edge of ``crop`` that lies inside
    the frame (a person the band's edge cuts is left to the normal pass)."""
    (nb, ns), (zb, zs) = normal, zoomed
    x0, y0, x1, y1 = crop
    width, height = frame_size
    keep = (zb[:, 3] - zb[:, 1]) < small
    margin = 2.0
    if y0 > 0:
        keep &= zb[:, 1] > y0 + margin
    if y1 < height:
        keep &= zb[:, 3] < y1 - margin
    if x0 > 0:
        keep &= zb[:, 0] > x0 + margin
    if x1 < width:
        keep &= zb[:, 2] < x1 - margin
    boxes = np.concatenate([nb, zb[keep]]).astype(np.float32)
    scores = np.concatenate([ns, zs[keep]]).astype(np.float32)
    kept = nms(boxes, scores, iou)
    return boxes[kept], scores[kept]
