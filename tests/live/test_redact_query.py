"""A camera URL's secret query parameters (``?password=``, ``&token=``...; cameras that take their credentials there)
are hidden wherever ``user:password@`` is: logs, the live table, ``--json``, the dashboard."""

from __future__ import annotations

from crowdcount.live import parse_source
from crowdcount.live.sources import redact


def test_secret_query_parameters_are_hidden() -> None:
    url = "http://user:pw@cam.local/video.mjpg?user=admin&password=s3cret&res=hd&api_key=k1&Token=t2&pwd=x"
    assert redact(url) == "http://cam.local/video.mjpg?user=admin&password=***&res=hd&api_key=***&Token=***&pwd=***"
    assert parse_source(f"door={url}").display == redact(url)


def test_a_url_without_secrets_is_left_as_it_is() -> None:
    for url in ("rtsp://cam/axis-media/media.amp?resolution=640x480&fps=5", "http://cam/s.mjpg", "rtsp://cam/live?"):
        assert redact(url) == url
