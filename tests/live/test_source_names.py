"""Source arguments that cannot name what they seem to: one line and exit 2 before any work, never a source that
reconnects forever to a URL that is no URL."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli
from crowdcount.errors import ConfigError
from crowdcount.live import parse_source


@pytest.mark.parametrize(
    ("text", "name"),
    [("kamera_ü=rtsp://cam/live", "kamera_ü"), ("my cam=rtsp://cam/live", "my cam"), ("=rtsp://cam/live", "")],
)
def test_a_name_that_is_no_name_is_refused_not_taken_for_a_url(text: str, name: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_source(text)
    assert str(error.value) == (
        f"source name {name!r} (before '=') is not a name "
        "(use letters, digits, '_', '.', ':' and '-', e.g. door=rtsp://cam/live)"
    )


def test_watch_refuses_a_unicode_name_with_one_line_and_exit_2(fake_detectors: None) -> None:
    result = CliRunner().invoke(
        cli,
        ["watch", "kamera_ü=rtsp://cam/live", "-d", "squares", "--no-table", "--retries", "0", "--open-timeout", "1s"],
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: source name 'kamera_ü' (before '=') is not a name "
        "(use letters, digits, '_', '.', ':' and '-', e.g. door=rtsp://cam/live)"
    ]


def test_names_and_urls_that_carry_an_equals_sign_still_parse() -> None:
    assert parse_source("door=rtsp://cam/live?user=a").id == "door"
    assert parse_source("http://cam/video.mjpg?res=hd").id == "cam/video.mjpg"
    assert parse_source("cam.1:left=3").target == "3"
