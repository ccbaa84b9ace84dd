"""A dashboard whose listing is slow (a big S3 prefix, a slow folder) goes on answering meanwhile: the listing runs
on a worker thread, never on the web server's event loop, whichever route asks for it."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

from prometheus_client import CollectorRegistry, Gauge

from crowdcount.web import ResultsCatalog
from crowdcount.web.app import WebServer, create_app


class SlowS3:
    """An S3 client whose listing, once armed, waits until it is released."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def get_paginator(self, name: str) -> Any:
        client = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                if client.armed:
                    client.entered.set()
                    client.release.wait(20)
                return [{"Contents": []}]

        return Paginator()


@pytest.mark.parametrize("route", ["api/results/nope", "download/nope.csv", "metrics"])
def test_the_page_answers_while_a_listing_is_slow(route: str) -> None:
    s3 = SlowS3()
    catalog = ResultsCatalog(["s3://bucket/results/"], s3=s3, rescan_s=0.0)
    registry = CollectorRegistry()
    Gauge("crowdcount_web_results", "Finished videos.", registry=registry).set_function(lambda: len(catalog.entries()))
    server = WebServer(create_app(catalog=catalog, registry=registry), "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{server.port}/"
    try:
        s3.armed = True
        slow = threading.Thread(target=lambda: _get(base + route, timeout=30), daemon=True)
        slow.start()
        assert s3.entered.wait(10), "the listing never started"
        status, body = _get(base + "api/info", timeout=3)  # answered while the listing waits
        assert status == 200 and b'"results":true' in body.replace(b" ", b"")
        s3.release.set()
        slow.join(10)
    finally:
        s3.release.set()
        server.stop()


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
