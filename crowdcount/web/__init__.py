"""The web dashboard: live cameras (``crowdcount watch --web``) and finished videos (``crowdcount dashboard``).

A Starlette application served by uvicorn (the ``web`` extra: ``pip install 'crowdcount[web]'``). The live side
observes the watcher's analysed frames (:class:`crowdcount.web.live.LiveHub`, one more output of the same record
stream); the finished side lists result files, S3 prefixes and the worker's job table
(:class:`crowdcount.web.results.ResultsCatalog`). The page, its scripts and styles ship inside the package
(``static/``, with uPlot for the charts); nothing is fetched from elsewhere. Details: docs/dashboard.md.
"""

from __future__ import annotations

from crowdcount.web.alerts import AlertMetrics, AlertMonitor, WebhookSender
from crowdcount.web.live import LiveHub, scrub
from crowdcount.web.results import ResultsCatalog

__all__ = ["AlertMetrics", "AlertMonitor", "LiveHub", "ResultsCatalog", "WebhookSender", "scrub"]
