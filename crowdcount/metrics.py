"""Prometheus metrics: serving a registry over HTTP (``--metrics-port``), shared by the live watcher, the
Kafka consumer and the SQS worker. Each service keeps its metrics in its own registry (see
:mod:`crowdcount.live.metrics` and :mod:`crowdcount.aws.metrics`)."""

from __future__ import annotations

import logging
from typing import Any

from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)

#: Latency buckets (seconds) from a fast local model to a slow stream.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Job duration buckets (seconds): seconds-long clips to hour-long videos.
JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class MetricsServer:
    """The HTTP server of a registry (``/metrics``); :meth:`close` stops it."""

    def __init__(self, server: Any, thread: Any, port: int, host: str = "127.0.0.1") -> None:
        self._server = server
        self._thread = thread
        self.port = port
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


#: Where metrics are served unless asked otherwise: this machine only (``--metrics-host 0.0.0.0`` exposes them,
#: e.g. in a container scraped from outside).
DEFAULT_METRICS_HOST = "127.0.0.1"


def serve_metrics(registry: Any, port: int, host: str = DEFAULT_METRICS_HOST) -> MetricsServer:
    """Serve ``registry`` on ``http://host:port/metrics`` in a daemon thread (port 0: any free port).

    Raises :class:`ConfigError` when the port cannot be bound."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"--metrics-port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}", "choose a free port"
        ) from None
    bound = int(server.server_address[1])
    metrics = MetricsServer(server, thread, bound, host)
    logger.info("metrics on %s", metrics.url)
    return metrics


def _url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
