"""A camera listed twice in a cameras file is a mistake said in one line (YAML and JSON would keep the last one
silently, and the first camera would never be watched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdcount.errors import ConfigError
from crowdcount.live.cameras import load_cameras

from conftest import run_cli


def test_a_camera_listed_twice_in_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  door:\n    source: rtsp://cam1/live\n  lobby: {source: 0}\n  door: {source: 1}\n")
    with pytest.raises(ConfigError) as error:
        load_cameras(path)
    assert str(error.value) == (
        f"cameras file {path}: 'door' is given twice (lines 2 and 5) (give each camera its own name)"
    )


def test_a_camera_listed_twice_in_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cameras.json"
    path.write_text('{"cameras": {"door": {"source": "rtsp://cam1/live"}, "door": {"source": "0"}}}')
    with pytest.raises(ConfigError) as error:
        load_cameras(path)
    assert str(error.value) == f"cameras file {path}: 'door' is given twice (give each camera its own name)"


def test_a_key_given_twice_inside_a_camera_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  door:\n    source: rtsp://cam1/live\n    source: rtsp://cam2/live\n")
    with pytest.raises(ConfigError, match=r"'source' is given twice \(lines 3 and 4\)"):
        load_cameras(path)


def test_watch_says_so_with_exit_2(tmp_path: Path, fake_detectors: None) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  door: {source: 0}\n  door: {source: 1}\n")
    code, _, err = run_cli("watch", "--cameras", str(path), "-d", "squares", "--no-table")
    assert code == 2
    assert err.strip().splitlines() == [
        f"Error: cameras file {path}: 'door' is given twice (lines 2 and 3) (give each camera its own name)"
    ]
