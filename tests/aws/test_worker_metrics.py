"""The worker's Prometheus job metrics: jobs by outcome, job seconds, queue lag; served over real HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from crowdcount.aws.jobs import submit_video
from crowdcount.aws.metrics import WorkerMetrics
from crowdcount.metrics import serve_metrics

from .support import FakeDetector, MockAws
from .test_worker import run


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_worker_exposes_job_metrics_over_http(aws: MockAws, tiny_video: Path, corrupt_video: Path) -> None:
    submit_video(aws.ctx, aws.config, tiny_video, 1)
    submit_video(aws.ctx, aws.config, corrupt_video, 2, probe=False)  # submit would refuse it: the worker sees it
    worker = aws.worker(FakeDetector(), max_jobs=2)
    worker.metrics = WorkerMetrics()
    server = serve_metrics(worker.metrics.registry, 0, host="127.0.0.1")
    try:
        stats = run(worker)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    assert (stats.done, stats.failed) == (1, 1)
    got = samples(text)
    assert got[("crowdcount_worker_jobs_total", (("outcome", "done"),))] == 1
    assert got[("crowdcount_worker_jobs_total", (("outcome", "failed"),))] == 1
    assert got[("crowdcount_worker_jobs_total", (("outcome", "released"),))] == 0
    assert got[("crowdcount_worker_job_seconds_count", ())] == 2
    assert got[("crowdcount_worker_job_seconds_sum", ())] > 0
    assert 0 <= got[("crowdcount_worker_queue_lag_seconds", ())] < 300
    assert got[("crowdcount_worker_busy", ())] == 0
