"""Every outcome the worker counts in its stats is a label of ``crowdcount_worker_jobs_total``."""

from __future__ import annotations

from dataclasses import fields

from crowdcount.aws.metrics import WorkerMetrics
from crowdcount.aws.worker import WorkerStats


def test_a_deferred_message_is_counted() -> None:
    """A message whose video runs under another message is handled (it counts towards --max-jobs): before, it was
    missing from the metric, so the outcomes did not add up to the messages handled."""
    metrics = WorkerMetrics()
    before = WorkerStats().to_dict()
    after = {**before, "deferred": 1}
    metrics.handled(before, after, 0.5)
    assert metrics.registry.get_sample_value("crowdcount_worker_jobs_total", {"outcome": "deferred"}) == 1.0


def test_the_outcomes_are_the_stats_counts() -> None:
    from crowdcount.aws.metrics import OUTCOMES

    counted = {f.name for f in fields(WorkerStats)} - {"received", "stop_reason"}
    assert sorted(OUTCOMES) == sorted(counted)
