"""A local AWS for the whole flow: moto's server on 127.0.0.1 with the bucket, queue (+ DLQ) and table of
``variables.json`` created.

Every AWS command talks to it through ``--endpoint-url`` or ``AWS_ENDPOINT_URL``; moto accepts any
credentials (dummy ones are used when none are configured). Its state lives in memory and ends with it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from crowdcount.aws.resources import Resources, provision
from crowdcount.aws.session import make_context
from crowdcount.config import Config
from crowdcount.errors import AWSError, ConfigError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566


@dataclass
class Sandbox:
    """A running moto server (see :func:`start_sandbox`); :meth:`stop` shuts it down."""

    endpoint: str
    resources: Resources
    created: dict[str, Any]
    _server: Any = field(repr=False, default=None)
    _thread: threading.Thread | None = field(repr=False, default=None)

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_until_answering(endpoint: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AWSError(f"the sandbox at {endpoint} does not answer") from None
            time.sleep(0.1)


def _check_can_listen(host: str, port: int) -> None:
    """:class:`AWSError` (one line) when ``host:port`` cannot be listened on: taken, or not an address here."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise AWSError(
            f"cannot listen on {host}:{port}: {reason}", "choose another --port or --host (port 0 picks a free one)"
        ) from None


def start_sandbox(
    config: Config, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, aws_managed_policies: bool = False
) -> Sandbox:
    """Start moto's server on ``host:port`` (0: a free port) in a background thread of this process, wait until
    it answers, and create the resources named in ``config``. :class:`AWSError` when the port is taken.

    ``aws_managed_policies``: IAM knows AWS's managed policies (``crowdcount deploy`` attaches
    AmazonECSTaskExecutionRolePolicy). moto reads the switch from this process's environment, so only a process
    that is the sandbox (``crowdcount sandbox``) should set it: moto's in-process mocks would load them too."""
    try:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    except ImportError:
        raise ConfigError(
            "the sandbox needs moto's server, which is not installed", "pip install 'crowdcount[sandbox]'"
        ) from None
    from werkzeug.serving import make_server

    _check_can_listen(host, port)  # werkzeug prints its own lines and exits when it cannot
    if aws_managed_policies:
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # read when an account's IAM is first used
    try:
        server = make_server(
            host,
            port,
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
    except (OSError, SystemExit) as exc:
        reason = getattr(exc, "strerror", None) or "taken meanwhile"
        raise AWSError(
            f"cannot listen on {host}:{port}: {reason}", "choose another --port, or 0 for a free one"
        ) from None
    address, bound_port = server.server_address[:2]
    bound_host = address.decode() if isinstance(address, bytes) else address
    endpoint = f"http://[{bound_host}]:{bound_port}" if ":" in bound_host else f"http://{bound_host}:{bound_port}"
    thread = threading.Thread(target=server.serve_forever, name="crowdcount-sandbox", daemon=True)
    thread.start()
    sandbox = Sandbox(endpoint, Resources.from_config(config), {}, server, thread)
    try:
        _wait_until_answering(endpoint)
        sandbox.created = provision(make_context(config["aws_region"], endpoint), sandbox.resources)
    except BaseException:
        sandbox.stop()
        raise
    logger.info("sandbox listening on %s", endpoint)
    return sandbox
