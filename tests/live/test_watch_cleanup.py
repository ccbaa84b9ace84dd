"""``watch`` that stops before it starts (a dashboard port in use, a broker that does not answer) closes what it had
opened already: the metrics server's socket and thread, the webhook's thread, the outputs."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from crowdcount.cli.main import cli

from .mjpeg import free_port


def test_a_dashboard_port_in_use_leaves_no_server_or_thread_behind(
    squares_clip: Path, fake_detectors: None, tmp_path: Path
) -> None:
    pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")
    metrics_port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        web_port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli,
            ["watch", str(squares_clip), "-d", "squares", "--no-table", "-o", str(tmp_path / "counts.jsonl"),
             "--metrics-port", str(metrics_port), "--web", str(web_port), "--webhook", "http://127.0.0.1:9/hook"],
        )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: the dashboard cannot listen on 127.0.0.1:{web_port}: Address already in use "
        "(pick another port with --web)"
    ]
    with socket.socket() as again:  # the metrics server let go of its port
        again.bind(("127.0.0.1", metrics_port))
    assert [t.name for t in threading.enumerate() if t.name == "crowdcount-web-webhook"] == []
