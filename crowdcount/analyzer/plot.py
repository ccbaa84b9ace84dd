"""Plots of a result document: people counted over time, per category, tracked, per zone, and line crossings.

Drawn with matplotlib's Agg canvas (no display, no global backend switch), after the analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crowdcount.analyzer.files import replaced_atomically
from crowdcount.analyzer.result import frame_series


def count_label(document: dict[str, Any], category: str) -> str:
    """What a category's ``count`` series is, for a legend: ``Human (1 s running median)``, or ``(per frame)``."""
    seconds = (document.get("count_smoothing") or {}).get("seconds") or 0
    return f"{category} ({seconds:g} s running median)" if seconds else f"{category} (per frame)"


def peak(document: dict[str, Any], category: str) -> tuple[int, float] | None:
    """The category's peak as the summary reports it: ``(max count, seconds into the video)``, ``None`` without
    one."""
    summary = (document.get("summary") or {}).get(category) or {}
    if not summary.get("max_count") or summary.get("peak_timestamp") is None:
        return None
    return int(summary["max_count"]), round(float(summary["peak_timestamp"]) / 1000, 3)


def peak_label(document: dict[str, Any], category: str) -> str | None:
    """``max 9 at 13.7 s``: the category's peak as the summary reports it (``None`` without one)."""
    found = peak(document, category)
    return None if found is None else f"max {found[0]} at {found[1]:.1f} s"


def plot_counts(document: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Draw ``document``'s counts over time into an image file (PNG, SVG or PDF by ``path``'s suffix), atomically:
    the figure of :func:`counts_figure`."""
    figure = counts_figure(document, title)
    path = Path(path)
    with replaced_atomically(path) as tmp:  # as the result file: no half picture, any older plot kept
        figure.savefig(tmp, dpi=100, format=path.suffix.lstrip(".").lower() or None)
    return path


def counts_figure(document: dict[str, Any], title: str | None = None) -> Any:
    """A matplotlib ``Figure`` of ``document``'s counts over time.

    Top panel: the count per category (as in the result file, smoothed as configured: the legend says how, and
    where the summary's peak is, marked with a dot) and, with tracking, the tracked people present. Then, when
    there are zones, people in each zone; when there are lines, the cumulative crossings in and out of each line.
    Legends sit to the right of the panels, never over the data.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frames = document["frames"]
    seconds = [f["frame_timestamp"] / 1000.0 for f in frames]
    series = frame_series(document)
    categories = [d["category"] for d in document["detectors"]]
    zones = {k: v for k, v in series.items() if k.startswith("zone:")}
    lines = sorted({k.rsplit(":", 1)[0] for k in series if k.endswith((":in", ":out")) and not k.startswith("zone:")})
    panels = 1 + bool(zones) + bool(lines)
    figure = Figure(figsize=(10, 3.2 * panels), constrained_layout=True)
    FigureCanvasAgg(figure)
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    video = document.get("video", {})
    tracking = document.get("tracking") or {}
    heading = title or str(video.get("name", ""))
    if "unique_people" in tracking:
        heading += f"  -  {tracking['unique_people']} different people"
    figure.suptitle(heading)

    ax = axes[0]
    for category in categories:
        counts = [f[category].get("count", len(f[category]["scores"])) for f in frames]
        label = count_label(document, category)
        peak = peak_label(document, category)
        (drawn,) = ax.step(seconds, counts, where="post", label=f"{label}, {peak}" if peak else label)
        summary = document.get("summary", {}).get(category, {})
        if peak:
            ax.plot([summary["peak_timestamp"] / 1000], [summary["max_count"]], "o", color=drawn.get_color())
    if "occupancy" in series:
        ax.step(seconds, series["occupancy"], where="post", label="people tracked (per frame)", linestyle="--")
    ax.set_ylabel("people in frame" if categories == ["Human"] else "count in frame")
    _finish_axes(ax)
    panel = 1
    if zones:
        ax = axes[panel]
        for name, values in zones.items():
            ax.step(seconds, values, where="post", label=name.removeprefix("zone:"))
        ax.set_ylabel("people in zone")
        _finish_axes(ax)
        panel += 1
    if lines:
        ax = axes[panel]
        for name in lines:
            (drawn,) = ax.step(seconds, series[f"{name}:in"], where="post", label=f"{name} in")
            ax.step(seconds, series[f"{name}:out"], where="post", label=f"{name} out", color=drawn.get_color(), ls=":")
        ax.set_ylabel("crossings so far")
        _finish_axes(ax)
    axes[-1].set_xlabel("time into the video (s)")
    return figure


def _finish_axes(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0)
