"""Loading ``variables.json``: a file saved by a Windows editor (with a UTF-8 byte order mark) is read."""

from __future__ import annotations

from pathlib import Path

from crowdcount.config import load_config


def test_a_config_file_with_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "variables.json"
    path.write_bytes(b'\xef\xbb\xbf{"human_detection": {"frame_ratio": 0.5}}')
    config = load_config(path, environ={})
    assert config.human_detection.frame_ratio == 0.5
    assert config.source == str(path)
