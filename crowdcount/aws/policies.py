"""The worker's small policies: how long to wait before a message comes back (:class:`RetryPolicy`), how to ride
out a queue that does not answer (:class:`ReceiveBackoff`), when to stop serving (:class:`ShutdownPolicy`) and
how a stop is carried out (:class:`StopRequest`: a grace period for the job in progress).

They hold numbers and answer questions; none calls AWS, so each is tested on its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from crowdcount.aws.settings import MAX_VISIBILITY, WorkerSettings


@dataclass(frozen=True)
class RetryPolicy:
    """When a message that could not be finished is received again.

    Args:
        retry_delay_s: the first retry's delay; each further attempt doubles it (``retry_delay_s * 2**(attempt-1)``).
        max_delay_s: the longest retry delay (the queue's visibility timeout).
        defer_margin_s: added to another worker's lease before a message whose video it runs comes back (the
            heartbeat interval: by then that worker has renewed its lease, or it is gone).
    """

    retry_delay_s: int = 10
    max_delay_s: int = 300
    defer_margin_s: int = 60

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> RetryPolicy:
        return cls(settings.retry_delay_seconds, settings.visibility_timeout, settings.heartbeat_seconds)

    def retry_delay(self, attempt: int) -> int:
        """Seconds until a failed message's next attempt (``attempt`` counts from 1)."""
        return int(min(self.max_delay_s, self.retry_delay_s * 2 ** (max(attempt, 1) - 1)))

    def defer_delay(self, lease_left_s: float) -> int:
        """Seconds until a message comes back whose video another worker holds for ``lease_left_s`` more."""
        return int(min(MAX_VISIBILITY, math.ceil(max(lease_left_s, 0.0)) + self.defer_margin_s))


@dataclass(frozen=True)
class ReceiveBackoff:
    """Receives that fail (after botocore's own retries) are retried after ``min(cap_s, 2**failures)`` seconds;
    after ``max_failures`` in a row the worker gives up (exit code 3)."""

    max_failures: int = 5
    cap_s: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.cap_s, 2.0**failures)

    def gives_up(self, failures: int) -> bool:
        return failures >= self.max_failures


@dataclass(frozen=True)
class ShutdownPolicy:
    """When a worker stops on its own: after ``max_jobs`` handled messages, or after ``idle_timeout_s`` without a
    message (``None``: never)."""

    max_jobs: int | None = None
    idle_timeout_s: float | None = None

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> ShutdownPolicy:
        return cls(settings.max_jobs, settings.idle_timeout_seconds)

    def stop_reason(self, handled: int, idle_s: float) -> str | None:
        """``"max-jobs"``, ``"idle-timeout"`` or ``None`` (go on)."""
        if self.max_jobs is not None and handled >= self.max_jobs:
            return "max-jobs"
        if self.idle_timeout_s is not None and self.idle_timeout_s - idle_s <= 0:
            return "idle-timeout"
        return None

    def receive_wait(self, wait_s: int, idle_s: float) -> int:
        """The long poll's wait, shortened so that the idle timeout is not overrun."""
        if self.idle_timeout_s is None:
            return wait_s
        return min(wait_s, max(0, math.ceil(self.idle_timeout_s - idle_s)))


class StopRequest:
    """A stop: no more receives; the job in progress gets ``grace_s`` to finish (none when ``immediate``, or
    on a second request), then it is cancelled. Safe from signal handlers (re-entrant lock, flags only).

    Args:
        grace_s: the grace period of a job in progress.
        clock: ``time.monotonic`` (tests may pass another).
    """

    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.clock = clock
        # Re-entrant: request() also runs from signal handlers, i.e. in the main thread, possibly while the
        # main thread holds the lock.
        self.lock = threading.RLock()
        self.requested = False
        self.reason = ""
        #: When the job in progress is cancelled (``None``: no stop, or no job).
        self.deadline: float | None = None
        self.wake = threading.Event()

    def request(self, reason: str, immediate: bool = False, busy: bool = False) -> None:
        """Stop for ``reason`` (the first one given is kept); ``busy``: a job is in progress."""
        with self.lock:
            again = self.requested
            self.requested = True
            if not again:
                self.reason = reason
            if busy:
                grace = 0.0 if (immediate or again) else self.grace_s
                deadline = self.clock() + grace
                self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)
        self.wake.set()

    def job_started(self) -> None:
        """A job starts: a stop already requested gives it the full grace period."""
        with self.lock:
            self.deadline = self.clock() + self.grace_s if self.requested else None

    def job_ended(self) -> None:
        with self.lock:
            self.deadline = None

    def grace_over(self) -> bool:
        deadline = self.deadline
        return deadline is not None and self.clock() >= deadline

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a stop is requested meanwhile."""
        self.wake.wait(seconds)
        self.wake.clear()
