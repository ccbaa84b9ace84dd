"""The line that says what happens to each source's frames: what ``stream produce --max-fps`` does to a file."""

from __future__ import annotations

from pathlib import Path

from crowdcount.cli.watch import mode_line
from crowdcount.live import Source, parse_source


def test_the_mode_line_says_what_max_fps_drops(squares_clip: Path) -> None:
    sources = [Source(parse_source(f"gate={squares_clip}")), Source(parse_source(f"door={squares_clip}"))]
    assert mode_line(sources) == "file mode (gate, door): every frame is analysed, none dropped"
    assert mode_line(sources, verb="published", max_fps=2.0) == (
        "file mode (gate, door): at most 2 frames published a second of video (--max-fps), the others dropped and "
        "counted"
    )
