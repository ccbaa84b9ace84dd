"""What becomes of a message: one pure function, :func:`decide`, from what happened (an :class:`Outcome`) and the
message's attempt number to an :class:`Action` on the message.

=================================  ===============  ====================================================
outcome                            action           why
=================================  ===============  ====================================================
``DONE`` / ``SKIPPED`` (already    ``ACK``          the result is uploaded and ``done`` recorded
done) / ``IGNORED`` / ``STOP``
``MALFORMED`` / ``PERMANENT``      ``DEAD_LETTER``  retrying cannot help (bad body, corrupt, missing or
                                                    too large video, the job ran too long)
``TRANSIENT``                      ``RETRY``        AWS down, a model failure, a bug: back after
                                                    ``retry_delay * 2**(attempt-1)`` (at most the
                                                    visibility timeout); SQS's redrive policy moves it
                                                    to the DLQ after ``maxReceiveCount`` receives
``BUSY``                           ``RETRY``        another message's run holds the video: back when
                                                    its lease ends (plus a heartbeat)
``CANCELLED``                      ``RELEASE``      the worker stops (or cannot work): visible again at
                                                    once, for another worker
``SUPERSEDED``                     ``LEAVE``        another worker took the job over: its message now
=================================  ===============  ====================================================

A message is acknowledged (deleted) only when every job it holds finished; it is never deleted for a job that
did not finish (dead-lettering sends it to the DLQ first).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from crowdcount.aws.policies import RetryPolicy
from crowdcount.errors import CrowdcountError


class Kind(enum.Enum):
    """What happened to a job (or to a message that held no job)."""

    DONE = "done"
    SKIPPED = "skipped"
    IGNORED = "ignored"
    STOP = "stop"
    MALFORMED = "malformed"
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    BUSY = "busy"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


#: The kinds after which a message's remaining jobs are not run (the message is not finished anyway).
STOPS_MESSAGE = frozenset({Kind.TRANSIENT, Kind.CANCELLED, Kind.SUPERSEDED, Kind.BUSY})
#: Which kind speaks for a message of several jobs: the first of these present.
_PRECEDENCE = (Kind.BUSY, Kind.CANCELLED, Kind.SUPERSEDED, Kind.TRANSIENT, Kind.PERMANENT, Kind.MALFORMED)


@dataclass(frozen=True)
class Outcome:
    """What happened: ``kind``, a ``reason`` for failures, ``lease_left_s`` for ``BUSY`` (how long the other run
    holds the video), and ``fault`` when this worker cannot go on (its disk: the message is released and the
    worker stops)."""

    kind: Kind
    reason: str = ""
    lease_left_s: float = 0.0
    fault: CrowdcountError | None = None

    @property
    def stops_message(self) -> bool:
        """Whether the message's remaining jobs are left unrun."""
        return self.kind in STOPS_MESSAGE


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    """The outcome of a message from those of its jobs: the first unfinished one by precedence (busy, cancelled,
    superseded, transient, permanent), else the first (done or skipped: the message is finished)."""
    if not outcomes:
        raise ValueError("a message's outcome needs at least one job outcome")
    for kind in _PRECEDENCE:
        found = next((o for o in outcomes if o.kind is kind), None)
        if found is not None:
            return found
    return outcomes[0]


class Action(enum.Enum):
    """What the worker does with the message."""

    ACK = "ack"  # delete it: finished
    RETRY = "retry"  # visible again after ``delay_s``
    DEAD_LETTER = "dead-letter"  # to the DLQ (then deleted), or left to the redrive policy
    RELEASE = "release"  # visible again at once, for another worker
    LEAVE = "leave"  # touch nothing: another worker holds it


@dataclass(frozen=True)
class Decision:
    """An :class:`Action`, with the ``delay_s`` of a retry and the ``reason`` of a dead letter."""

    action: Action
    delay_s: int = 0
    reason: str = ""


def decide(outcome: Outcome, attempt: int, policy: RetryPolicy | None = None) -> Decision:
    """What to do with a message whose (combined) outcome is ``outcome`` on its ``attempt``-th receive (from 1),
    under ``policy``'s delays (default :class:`RetryPolicy`'s). Pure: no clock, no AWS."""
    policy = policy or RetryPolicy()
    kind = outcome.kind
    if kind in (Kind.DONE, Kind.SKIPPED, Kind.IGNORED, Kind.STOP):
        return Decision(Action.ACK)
    if kind in (Kind.MALFORMED, Kind.PERMANENT):
        return Decision(Action.DEAD_LETTER, reason=outcome.reason)
    if kind is Kind.TRANSIENT:
        return Decision(Action.RETRY, policy.retry_delay(attempt), outcome.reason)
    if kind is Kind.BUSY:
        return Decision(Action.RETRY, policy.defer_delay(outcome.lease_left_s), "video running elsewhere")
    if kind is Kind.CANCELLED:
        return Decision(Action.RELEASE, reason=outcome.reason)
    if kind is Kind.SUPERSEDED:
        return Decision(Action.LEAVE, reason=outcome.reason)
    raise ValueError(f"no decision for outcome {kind}")  # pragma: no cover - every kind is listed above
