"""The worker's job log: one structured line per event (``job running``, ``message left for retry``...).

The queue lease, the job runner and the loop all write to the logger ``crowdcount.aws.worker``, the one name
that users (and ``crowdcount worker``'s log level) filter on, whichever module the line comes from.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from crowdcount.aws.messages import Job

#: The worker's job log (one name for the loop, the lease and the runner).
JOB_LOG = logging.getLogger("crowdcount.aws.worker")


class Delivery(Protocol):
    """What a log line says about the message being worked on."""

    @property
    def attempt(self) -> int: ...

    @property
    def message_id(self) -> str: ...


def log_event(level: int, event: str, job: Job | None = None, ctx: Delivery | None = None, **fields: Any) -> None:
    """One structured line: ``event`` plus video id, attempt and ``fields`` (as ``extra`` for JSON logs)."""
    data: dict[str, Any] = {"event": event}
    if job is not None:
        data["video_id"] = job.video_id
        data["s3_uri"] = job.s3_uri
    if ctx is not None:
        data["attempt"] = ctx.attempt
        data["message_id"] = ctx.message_id
    data.update({k: v for k, v in fields.items() if v is not None})
    text = " ".join(f"{k}={v}" for k, v in data.items() if k != "event")
    JOB_LOG.log(level, "%s %s", event, text, extra=data)
