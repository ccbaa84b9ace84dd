"""The metrics server's URL is one a client can open, IPv6 hosts included."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from crowdcount.metrics import serve_metrics


def test_an_ipv4_host_is_written_as_it_is() -> None:
    server = serve_metrics(CollectorRegistry(), 0, host="127.0.0.1")
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(server.url, timeout=5) as response:
            assert response.status == 200
    finally:
        server.close()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 here")
def test_an_ipv6_host_is_bracketed() -> None:
    try:
        server = serve_metrics(CollectorRegistry(), 0, host="::1")
    except Exception as exc:  # an IPv6-less container: nothing to test
        pytest.skip(f"cannot listen on ::1: {exc}")
    try:
        assert server.url == f"http://[::1]:{server.port}/metrics"
        with urllib.request.urlopen(server.url, timeout=5) as response:
            assert response.status == 200
    finally:
        server.close()
