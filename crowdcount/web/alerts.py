"""Alerts of the live dashboard: a zone over its ``max_occupancy``, a camera stalled or reconnecting.

An alert is *raised* when its condition starts and *cleared* when it ends. Each raise is counted in
``crowdcount_web_alerts_total{kind, source}``, ``crowdcount_web_alerts_active{kind, source}`` is 1 while it
lasts, the page lists the active ones and the recent history, and, with a webhook URL, each raise and clear
is POSTed as JSON (from a thread of its own, so a slow webhook never slows the counting)::

    {"kind": "zone_over_capacity", "state": "raised", "source": "gate", "zone": "queue",
     "message": "zone queue of gate: 7 people, more than 5", "time": "2026-01-01T12:00:00.123Z"}
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

ZONE_OVER = "zone_over_capacity"
STALLED = "camera_stalled"
RECONNECTING = "camera_reconnecting"
KINDS = (ZONE_OVER, STALLED, RECONNECTING)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


class AlertMetrics:
    """The alert counters, registered in the dashboard's Prometheus registry."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.total = Counter(
            "crowdcount_web_alerts", "Alerts raised, per kind and source.", ["kind", "source"], registry=registry
        )
        self.active = Gauge(
            "crowdcount_web_alerts_active",
            "1 while an alert lasts, per kind and source.",
            ["kind", "source"],
            registry=registry,
        )
        self.webhook_failures = Counter(
            "crowdcount_web_webhook_failures", "Alert webhook POSTs that failed.", registry=registry
        )


class WebhookSender:
    """POSTs alert events as JSON to ``url`` from a background thread (best effort: failures are logged)."""

    def __init__(self, url: str, timeout_s: float = 5.0, metrics: AlertMetrics | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.sent = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._run, name="crowdcount-web-webhook", daemon=True)
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            logger.warning("alert webhook: queue full, an alert was not sent")

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            request = urllib.request.Request(
                self.url,
                data=json.dumps(event).encode(),
                headers={"Content-Type": "application/json", "User-Agent": "crowdcount-dashboard"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                self.sent += 1
            except Exception as exc:  # a webhook down must not stop the dashboard
                if self.metrics is not None:
                    self.metrics.webhook_failures.inc()
                logger.warning("alert webhook failed: %s", type(exc).__name__)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)


class AlertMonitor:
    """Evaluates the alert rules on each status update (see the module docstring).

    Args:
        max_occupancy: zone name -> the most people allowed in it (on every source that has the zone).
        source_limits: source name -> its own limits (zone name -> people; a cameras file's ``max_occupancy``),
            which take precedence over ``max_occupancy`` on that source.
        metrics: :class:`AlertMetrics` to count alerts in (optional).
        webhook: a :class:`WebhookSender` (optional).
        history: how many past alerts the page lists.
    """

    def __init__(
        self,
        max_occupancy: Mapping[str, int] | None = None,
        metrics: AlertMetrics | None = None,
        webhook: WebhookSender | None = None,
        history: int = 50,
        source_limits: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        self.max_occupancy = dict(max_occupancy or {})
        self.source_limits = {source: dict(limits) for source, limits in (source_limits or {}).items()}
        self.metrics = metrics
        self.webhook = webhook
        self._active: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._lock = threading.Lock()

    def update(self, sources: list[dict[str, Any]], now: float | None = None) -> list[dict[str, Any]]:
        """Raise and clear alerts for the sources' current status (rows of ``/api/status``); the events."""
        now = time.time() if now is None else now
        current: dict[tuple[str, str, str], str] = {}
        for row in sources:
            name = row["name"]
            if row.get("status") == "stalled":
                current[(STALLED, name, "")] = f"camera {name} stalled: no frame for a while"
            elif row.get("status") == "reconnecting":
                error = f" ({row['last_error']})" if row.get("last_error") else ""
                current[(RECONNECTING, name, "")] = f"camera {name} reconnecting{error}"
            own = self.source_limits.get(name, {})
            for zone, figures in row.get("zones", {}).items():
                limit = own.get(zone, self.max_occupancy.get(zone))
                if limit is not None and figures.get("occupancy", 0) > limit:
                    current[(ZONE_OVER, name, zone)] = (
                        f"zone {zone} of {name}: {figures['occupancy']} people, more than {limit}"
                    )
        events = []
        with self._lock:
            for key, message in current.items():
                if key not in self._active:
                    alert = {
                        "kind": key[0],
                        "source": key[1],
                        "zone": key[2] or None,
                        "message": message,
                        "since": _iso(now),
                    }
                    self._active[key] = alert
                    events.append({**alert, "state": "raised", "time": _iso(now)})
                else:
                    self._active[key]["message"] = message
            for key in [k for k in self._active if k not in current]:
                alert = self._active.pop(key)
                events.append({**alert, "state": "cleared", "time": _iso(now)})
            for event in events:
                self._history.appendleft(event)
        for event in events:
            kind, source = event["kind"], event["source"]
            if self.metrics is not None:
                if event["state"] == "raised":
                    self.metrics.total.labels(kind, source).inc()
                self.metrics.active.labels(kind, source).set(1 if event["state"] == "raised" else 0)
            (logger.warning if event["state"] == "raised" else logger.info)(
                "alert %s: %s", event["state"], event["message"]
            )
            if self.webhook is not None:
                self.webhook.send(event)
        return events

    def active(self) -> list[dict[str, Any]]:
        """The alerts in force now."""
        with self._lock:
            return [dict(a) for a in self._active.values()]

    def history(self) -> list[dict[str, Any]]:
        """The latest raise and clear events, newest first."""
        with self._lock:
            return list(self._history)

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()
