"""The SQS worker's Prometheus metrics (``crowdcount worker --metrics-port``), in their own registry.

- ``crowdcount_worker_jobs_total{outcome}``: messages handled, by outcome (done, skipped, failed, malformed,
  superseded, released, deferred: a message whose video runs under another message, back later).
- ``crowdcount_worker_job_seconds``: histogram of the time one message took (download, analysis, upload).
- ``crowdcount_worker_queue_lag_seconds``: age of the last message received (now - its SentTimestamp):
  how far behind the queue this worker is. Growing lag = add workers.
- ``crowdcount_worker_busy``: 1 while a job runs.
"""

from __future__ import annotations

import time
from typing import Any

from crowdcount.metrics import JOB_BUCKETS

OUTCOMES = ("done", "skipped", "failed", "malformed", "superseded", "released", "deferred")


class WorkerMetrics:
    """Job metrics of one :class:`crowdcount.aws.worker.Worker` (it calls :meth:`received` and :meth:`handled`)."""

    def __init__(self, registry: Any | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.jobs = Counter("crowdcount_worker_jobs", "Messages handled, by outcome.", ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.jobs.labels(outcome)
        self.job_seconds = Histogram(
            "crowdcount_worker_job_seconds", "Seconds to handle one message.", buckets=JOB_BUCKETS, registry=r
        )
        self.queue_lag = Gauge(
            "crowdcount_worker_queue_lag_seconds", "Age of the last message received (now - SentTimestamp).", registry=r
        )
        self.busy = Gauge("crowdcount_worker_busy", "1 while a job runs.", registry=r)

    def received(self, messages: list[dict[str, Any]], now: float | None = None) -> None:
        """Record the queue lag of freshly received messages."""
        now = time.time() if now is None else now
        sent = [int(m.get("Attributes", {}).get("SentTimestamp", 0)) for m in messages]
        sent = [s for s in sent if s > 0]
        if sent:
            self.queue_lag.set(max(0.0, now - min(sent) / 1000.0))

    def handled(self, before: dict[str, Any], after: dict[str, Any], seconds: float) -> None:
        """Record one handled message from the worker's stats before and after it."""
        for outcome in OUTCOMES:
            delta = int(after.get(outcome, 0)) - int(before.get(outcome, 0))
            if delta > 0:
                self.jobs.labels(outcome).inc(delta)
        self.job_seconds.observe(seconds)
