"""The count plot says what it shows: axis labels with units, legends naming the smoothing and the summary's peak
(the same number as the result file), legends beside the data rather than over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crowdcount.analyzer.plot import count_label, counts_figure, plot_counts


def document(smoothing_s: float = 1.0) -> dict[str, Any]:
    counts = [1, 3, 3, 5, 2]
    frames = [
        {"frame_index": i + 1, "frame_timestamp": i * 500.0, "Human": {"scores": [0.9] * n, "count": n}}
        for i, n in enumerate(counts)
    ]
    return {
        "video": {"name": "door.mp4"},
        "count_smoothing": {"seconds": smoothing_s, "frames": 3},
        "detectors": [{"name": "human", "category": "Human"}],
        "summary": {"Human": {"max_count": 5, "peak_frame_index": 4, "peak_timestamp": 1500.0}},
        "tracking": {"unique_people": 6, "per_frame": {"occupancy": [1, 2, 3, 4, 2]}},
        "counting": {"per_frame": {"zone:queue": [0, 1, 1, 2, 0], "door:in": [0, 0, 1, 1, 2], "door:out": [0] * 5}},
        "frames": frames,
    }


def test_every_panel_has_labelled_axes_and_a_legend_beside_it() -> None:
    figure = counts_figure(document())
    axes = figure.axes
    assert [ax.get_ylabel() for ax in axes] == ["people in frame", "people in zone", "crossings so far"]
    assert axes[-1].get_xlabel() == "time into the video (s)"
    assert figure._suptitle.get_text() == "door.mp4  -  6 different people"
    figure.canvas.draw()
    for ax in axes:
        legend = ax.get_legend()
        assert legend is not None
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # right of the data, not over it


def test_the_legend_names_the_smoothing_and_the_peak_of_the_summary() -> None:
    figure = counts_figure(document())
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["Human (1 s running median), max 5 at 1.5 s", "people tracked (per frame)"]
    markers = [line for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    assert [(list(m.get_xdata()), list(m.get_ydata())) for m in markers] == [([1.5], [5])]
    counts = next(line for line in figure.axes[0].get_lines() if line.get_label().startswith("Human"))
    assert np.max(counts.get_ydata()) == 5  # the drawn peak is the summary's


def test_raw_counts_are_called_per_frame() -> None:
    assert count_label(document(0.0), "Human") == "Human (per frame)"
    assert count_label(document(2.5), "Face") == "Face (2.5 s running median)"


def test_the_plot_is_written_as_a_png(tmp_path: Path) -> None:
    path = plot_counts(document(), tmp_path / "sub" / "counts.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
