"""ECS task scale-in protection while a worker runs a job.

An autoscaled ECS service that scales in stops tasks with SIGTERM and, ``stopTimeout`` later, SIGKILL. A video
takes minutes; a worker stopped mid-job hands its message back (nothing is lost) but the work is wasted. A
protected task is not chosen for scale-in: the worker protects its task while it handles a message, through the
ECS container agent's task-protection endpoint (``$ECS_AGENT_URI/task-protection/v1/state``), and drops the
protection when it is idle again. The task role needs ``ecs:UpdateTaskProtection`` (``crowdcount deploy``
grants it).

Protection is best effort: outside ECS (no ``ECS_AGENT_URI``) it is off, and a failed call is logged and
never fails a job.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from crowdcount.config import MAX_PROTECTION_MINUTES

logger = logging.getLogger(__name__)

#: ECS's ceiling on ``ExpiresInMinutes`` (48 hours; the limit of ``worker.scale_in_protection_minutes`` too).
MAX_MINUTES = MAX_PROTECTION_MINUTES
PATH = "/task-protection/v1/state"


class TaskProtection:
    """Turns the task's scale-in protection on and off through the ECS agent at ``agent_uri``.

    Args:
        agent_uri: the container's ``ECS_AGENT_URI``.
        minutes: how long one call protects the task (``ExpiresInMinutes``); a worker that dies does not keep
            its task protected for longer. :meth:`renew_due` says when to renew it during a long job.
        timeout_s: HTTP timeout of one call.
        clock: monotonic clock (tests).
    """

    def __init__(
        self, agent_uri: str, minutes: int, timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_MINUTES:
            raise ValueError(f"protection minutes must be in [1, {MAX_MINUTES}], got {minutes!r}")
        self.url = agent_uri.rstrip("/") + PATH
        self.minutes = minutes
        self.timeout_s = timeout_s
        self.clock = clock
        self.enabled_at: float | None = None
        self.failures = 0

    @classmethod
    def from_environ(cls, minutes: int, environ: Mapping[str, str] | None = None) -> TaskProtection | None:
        """Protection for this task when running on ECS (``ECS_AGENT_URI`` set) and ``minutes`` > 0, else None."""
        uri = (os.environ if environ is None else environ).get("ECS_AGENT_URI")
        if not uri or minutes <= 0:
            return None
        return cls(uri, minutes)

    def enable(self) -> bool:
        """Protect the task for ``minutes`` from now; False (logged) when the agent refused or was unreachable.

        A failed renewal keeps the time of the last protection that held: it is still on at the agent, so
        :meth:`renew_due` stays true (the next beat tries again) and :meth:`disable` still drops it."""
        ok = self._put({"ProtectionEnabled": True, "ExpiresInMinutes": self.minutes})
        if ok:
            self.enabled_at = self.clock()
        return ok

    def disable(self) -> bool:
        """Let the task be scaled in again."""
        was = self.enabled_at
        self.enabled_at = None
        return self._put({"ProtectionEnabled": False}) if was is not None else True

    def renew_due(self) -> bool:
        """Whether half of the protection's lifetime has passed (renew with :meth:`enable`)."""
        return self.enabled_at is not None and self.clock() - self.enabled_at >= self.minutes * 30

    def _put(self, body: dict[str, Any]) -> bool:
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            answer = _json_or_text(exc.read())
            return self._failed(body, f"HTTP {exc.code}: {_reason(answer)}")
        except (OSError, ValueError) as exc:
            return self._failed(body, f"{type(exc).__name__}: {exc}")
        if isinstance(answer, dict) and "protection" in answer:
            logger.debug("task scale-in protection %s", "on" if body["ProtectionEnabled"] else "off")
            return True
        return self._failed(body, _reason(answer))

    def _failed(self, body: dict[str, Any], reason: str) -> bool:
        self.failures += 1
        logger.warning(
            "could not turn task scale-in protection %s (%s); the job goes on, but a scale-in may stop it%s",
            "on" if body["ProtectionEnabled"] else "off",
            reason,
            " (does the task role allow ecs:UpdateTaskProtection?)" if "AccessDenied" in reason else "",
        )
        return False


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:200]


def _reason(answer: Any) -> str:
    """The agent's ``failure`` / ``error`` explanation, or the answer itself."""
    if isinstance(answer, dict):
        for key in ("failure", "error"):
            detail = answer.get(key)
            if isinstance(detail, dict):
                parts = [str(detail.get(k)) for k in ("Code", "Reason", "Message", "Detail") if detail.get(k)]
                return " ".join(parts) or key
    return str(answer)[:200]
