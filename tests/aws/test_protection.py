"""ECS task scale-in protection: the agent calls, and the worker holding protection only while it works."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdcount.aws.jobs import submit_video
from crowdcount.aws.protection import PATH, TaskProtection
from crowdcount.aws.worker import WorkerSettings
from crowdcount.detectors import Detections
from crowdcount.errors import ConfigError

from .support import FakeDetector, MockAws, make_config


class FakeAgent:
    """The ECS container agent's task-protection endpoint: records each PUT body, answers like the agent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.protected = False
        self.refuse: dict[str, Any] | None = None  # answer with this (HTTP 400) instead of success
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                agent.calls.append({"path": self.path, **body})
                if agent.refuse is not None:
                    status, answer = 400, agent.refuse
                else:
                    agent.protected = body["ProtectionEnabled"]
                    status = 200
                    answer = {"protection": {"ProtectionEnabled": agent.protected, "TaskArn": "arn:task/c/1"}}
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_port}/v3/abc-123"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()
    yield fake
    fake.close()


def test_enable_and_disable_call_the_agent(agent: FakeAgent) -> None:
    protection = TaskProtection(agent.uri, 30)
    assert protection.disable() is True and agent.calls == []  # nothing to drop yet: no call
    assert protection.enable() is True and agent.protected
    assert protection.disable() is True and not agent.protected
    assert agent.calls == [
        {"path": "/v3/abc-123" + PATH, "ProtectionEnabled": True, "ExpiresInMinutes": 30},
        {"path": "/v3/abc-123" + PATH, "ProtectionEnabled": False},
    ]


def test_renewal_is_due_after_half_the_lifetime(agent: FakeAgent) -> None:
    now = [1000.0]
    protection = TaskProtection(agent.uri, 10, clock=lambda: now[0])
    assert not protection.renew_due()  # not enabled
    protection.enable()
    now[0] += 299
    assert not protection.renew_due()
    now[0] += 1
    assert protection.renew_due()


def test_refusals_and_an_unreachable_agent_are_logged_never_raised(
    agent: FakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent.refuse = {"error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
    protection = TaskProtection(agent.uri, 30)
    with caplog.at_level(logging.WARNING, "crowdcount.aws.protection"):
        assert protection.enable() is False
    assert "HTTP 400: AccessDeniedException not allowed" in caplog.text
    assert "ecs:UpdateTaskProtection" in caplog.text
    agent.refuse = {"failure": {"Arn": "arn:task/c/1", "Reason": "TASK_NOT_VALID", "Detail": "stopping"}}
    assert protection.enable() is False and protection.failures == 2
    agent.close()
    assert TaskProtection(agent.uri, 30, timeout_s=1).enable() is False


def test_only_on_ecs_and_only_when_asked() -> None:
    assert TaskProtection.from_environ(120, environ={}) is None
    assert TaskProtection.from_environ(0, environ={"ECS_AGENT_URI": "http://169.254.170.2/v3/x"}) is None
    on_ecs = TaskProtection.from_environ(120, environ={"ECS_AGENT_URI": "http://169.254.170.2/v3/x/"})
    assert on_ecs is not None and on_ecs.url == "http://169.254.170.2/v3/x" + PATH and on_ecs.minutes == 120
    with pytest.raises(ValueError, match="2880"):
        TaskProtection("http://agent", 2881)


def test_bad_protection_minutes_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scale_in_protection_minutes"):
        WorkerSettings.from_config(make_config(tmp_path, scale_in_protection_minutes=-1))


class WatchingDetector(FakeDetector):
    """Notes whether the task was protected each time it ran."""

    def __init__(self, agent: FakeAgent) -> None:
        super().__init__()
        self.agent = agent
        self.protected_while_detecting: list[bool] = []

    def _detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        self.protected_while_detecting.append(self.agent.protected)
        return super()._detect(frames)


def test_worker_is_protected_only_while_it_handles_a_job(aws: MockAws, agent: FakeAgent, tiny_video: Path) -> None:
    submit_video(aws.ctx, aws.config, tiny_video, 1)
    detector = WatchingDetector(agent)
    worker = aws.worker(detector, max_jobs=1)
    worker.protection = TaskProtection(agent.uri, 120)
    stats = worker.run()
    assert (stats.done, stats.failed) == (1, 0)
    assert detector.protected_while_detecting and all(detector.protected_while_detecting)
    assert [c["ProtectionEnabled"] for c in agent.calls] == [True, False] and not agent.protected
    assert agent.calls[0]["ExpiresInMinutes"] == 120


def test_a_refused_protection_does_not_fail_the_job(aws: MockAws, agent: FakeAgent, tiny_video: Path) -> None:
    agent.refuse = {"error": {"Code": "AccessDeniedException", "Message": "no ecs:UpdateTaskProtection"}}
    submit_video(aws.ctx, aws.config, tiny_video, 1)
    worker = aws.worker(FakeDetector(), max_jobs=1)
    worker.protection = TaskProtection(agent.uri, 120)
    stats = worker.run()
    assert (stats.done, stats.failed) == (1, 0)
    assert aws.queue_counts() == (0, 0)  # the message was still acknowledged
    assert [c["ProtectionEnabled"] for c in agent.calls] == [True]  # never enabled, so nothing to drop
