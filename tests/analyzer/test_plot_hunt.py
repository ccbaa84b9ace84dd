"""The count plot is written atomically, like the result file and the CSV: never half a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from crowdcount.analyzer.plot import plot_counts


def document() -> dict[str, Any]:
    frames = [
        {"frame_index": i + 1, "frame_timestamp": i * 100.0, "Human": {"scores": [], "count": 0}} for i in range(3)
    ]
    return {
        "video": {"name": "empty.mp4"},
        "count_smoothing": {"seconds": 1.0, "frames": 9},
        "detectors": [{"name": "human", "category": "Human"}],
        "summary": {"Human": {"max_count": 0, "peak_frame_index": None, "peak_timestamp": None}},
        "frames": frames,
    }


def test_a_plot_interrupted_while_saving_leaves_the_previous_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "counts.png"
    target.write_bytes(b"the previous plot")
    real_savefig = Figure.savefig

    def interrupted(self: Figure, fname: Any, **kwargs: Any) -> None:
        real_savefig(self, fname, **kwargs)
        with open(fname, "r+b") as fh:  # half written when the user pressed Ctrl-C
            fh.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plot_counts(document(), target)
    assert target.read_bytes() == b"the previous plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.png"]


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_a_plot_of_a_video_without_detections_is_written_in_its_format(tmp_path: Path, suffix: str) -> None:
    path = plot_counts(document(), tmp_path / f"counts{suffix}")
    head = path.read_bytes()[:5]
    assert head == {".png": b"\x89PNG\r", ".svg": b"<?xml", ".pdf": b"%PDF-"}[suffix]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counts{suffix}"]
