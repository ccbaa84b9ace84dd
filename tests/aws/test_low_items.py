"""Small faults from the audit (issue 16, Low): markup in file names, detector-arg types, temp files, secrets."""

from __future__ import annotations

import pytest

from crowdcount.cli.analyze import _print_table


def test_rich_markup_in_a_file_name_is_printed_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    rows = [
        {"video": "in/clip[/x].mp4", "ok": False, "error": "'clip[/x].mp4' [bold]is empty"},
        {
            "video": "in/a[red]b.mp4",
            "ok": True,
            "summary": {"Human": {"frames_analyzed": 3, "max_count": 1, "mean_count": 1.0, "peak_timestamp": 0.0}},
            "result_file": "out/a[/red]b.json",
            "count_smoothing": {"seconds": 0, "frames": 1},
            "lines": [{"name": "door[/b]", "in": 1, "out": 0}],
        },
    ]
    _print_table(rows)
    out = capsys.readouterr().out
    assert "clip[/x].mp4" in out and "a[red]b.mp4" in out and "a[/red]b.json" in out and "door[/b]" in out
