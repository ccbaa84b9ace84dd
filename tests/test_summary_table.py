"""The summary table of ``analyze`` at 80 columns: video names wrap, never cut; result paths are printed whole
under the table."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from crowdcount.cli.main import cli

from conftest import write_video


def test_long_names_wrap_at_80_columns(tmp_path: Path, fake_detectors: None) -> None:
    name = "entrance-camera-2026-12-06-vtest-15s.mp4"
    video = write_video(tmp_path / name, 4)
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        cli,
        [
            "analyze",
            str(video),
            "-d",
            "squares",
            "--no-track",
            "-o",
            str(tmp_path / "out"),
            "--csv",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    table = [line for line in result.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert rows and all(len(line) <= 80 for line in table)
    assert "…" not in result.stdout
    first_column = "".join(row.split("│")[1].strip() for row in rows)
    assert first_column == name
    notes = result.stdout.splitlines()
    assert f"{name}: result file {tmp_path / 'out' / name.replace('.mp4', '.json')}" in notes
    assert f"{name}: counts CSV {tmp_path / 'out' / name.replace('.mp4', '.csv')}" in notes
