"""Per-frame counts over time: a centred running median steadies them without touching the detections.

Counting over time is steadier than per-frame detection: a person missed in one frame is usually found in the
next, and a false positive rarely lasts. On PETS09-S2L1 the default, a median over 1 s (11 frames at 10 fps),
cuts the default detector's count error by a quarter to a half (docs/accuracy.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def smoothing_window(span_s: float, fps: float, frame_ratio: float) -> int:
    """The odd number of analysed frames that best covers ``span_s`` seconds (1: no smoothing).

    ``fps`` is the video's frame rate and ``frame_ratio`` the share of its frames analysed; an unknown frame
    rate (0) gives 1.
    """
    if span_s <= 0 or fps <= 0 or frame_ratio <= 0:
        return 1
    frames = span_s * fps * frame_ratio
    window = max(1, round(frames))
    if window % 2 == 0:  # the nearest odd window; ties go to the larger one
        window += 1 if frames >= window else -1
    return max(1, window)


def smooth_counts(counts: npt.ArrayLike, window: int) -> np.ndarray:
    """Centred running median of per-frame counts over ``window`` frames (odd; edges repeat the end values).

    ``window`` 1 returns the counts unchanged.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the smoothing window must be a positive odd number of frames, got {window}")
    values = np.asarray(counts, np.float64)
    if window == 1 or not len(values):
        return values.copy()
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.median(windows, axis=1)
