"""The worker's decision table and policies, without AWS: one test per row of :func:`decide`'s table."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from crowdcount.aws.decide import Action, Decision, Kind, Outcome, combine, decide
from crowdcount.aws.job import JobContext, WorkerFault
from crowdcount.aws.lease import Lease, MessageQueue
from crowdcount.aws.policies import ReceiveBackoff, RetryPolicy, ShutdownPolicy, StopRequest
from crowdcount.aws.settings import MAX_VISIBILITY

POLICY = RetryPolicy(retry_delay_s=10, max_delay_s=300, defer_margin_s=60)


# -- the decision table, row by row ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [Kind.DONE, Kind.SKIPPED, Kind.IGNORED, Kind.STOP])
def test_row_finished_messages_are_acknowledged(kind: Kind) -> None:
    assert decide(Outcome(kind), 1, POLICY) == Decision(Action.ACK)
    assert decide(Outcome(kind), 7, POLICY) == Decision(Action.ACK)  # whatever the attempt


def test_row_a_malformed_message_is_dead_lettered_with_its_reason() -> None:
    decision = decide(Outcome(Kind.MALFORMED, "malformed message: not JSON"), 1, POLICY)
    assert decision == Decision(Action.DEAD_LETTER, 0, "malformed message: not JSON")


def test_row_a_permanent_failure_is_dead_lettered_at_once() -> None:
    decision = decide(Outcome(Kind.PERMANENT, "video is corrupt"), 1, POLICY)
    assert decision == Decision(Action.DEAD_LETTER, 0, "video is corrupt")


@pytest.mark.parametrize(("attempt", "delay"), [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (30, 300)])
def test_row_a_transient_failure_is_retried_with_a_doubling_delay_capped_at_the_visibility(
    attempt: int, delay: int
) -> None:
    decision = decide(Outcome(Kind.TRANSIENT, "AWS down"), attempt, POLICY)
    assert decision == Decision(Action.RETRY, delay, "AWS down")


def test_row_a_video_running_elsewhere_comes_back_when_that_lease_ends() -> None:
    decision = decide(Outcome(Kind.BUSY, lease_left_s=41.2), 1, POLICY)
    assert decision == Decision(Action.RETRY, 42 + 60, "video running elsewhere")
    assert decide(Outcome(Kind.BUSY, lease_left_s=10**9), 1, POLICY).delay_s == MAX_VISIBILITY
    assert decide(Outcome(Kind.BUSY, lease_left_s=-5), 3, POLICY).delay_s == 60  # an expired lease: one beat


def test_row_a_cancelled_job_releases_its_message_at_once() -> None:
    decision = decide(Outcome(Kind.CANCELLED, "interrupted"), 2, POLICY)
    assert decision == Decision(Action.RELEASE, 0, "interrupted")


def test_row_a_superseded_job_leaves_the_message_to_its_new_owner() -> None:
    assert decide(Outcome(Kind.SUPERSEDED, "lease lost"), 1, POLICY).action is Action.LEAVE


def test_every_kind_has_a_row_and_only_finished_ones_are_acknowledged() -> None:
    acked = {kind for kind in Kind if decide(Outcome(kind), 1, POLICY).action is Action.ACK}
    assert acked == {Kind.DONE, Kind.SKIPPED, Kind.IGNORED, Kind.STOP}


def test_the_default_policy_is_the_configuration_defaults() -> None:
    assert decide(Outcome(Kind.TRANSIENT), 2).delay_s == 20


# -- a message of several jobs -------------------------------------------------------------------------------------


def test_a_message_is_finished_only_when_every_job_is() -> None:
    done, skipped = Outcome(Kind.DONE), Outcome(Kind.SKIPPED)
    assert combine([done, skipped]) is done
    permanent = Outcome(Kind.PERMANENT, "corrupt")
    assert combine([done, permanent]) is permanent
    transient = Outcome(Kind.TRANSIENT, "S3 down")
    assert combine([permanent, transient]) is transient  # retried: the failed job may pass next time
    busy, cancelled = Outcome(Kind.BUSY, lease_left_s=3), Outcome(Kind.CANCELLED)
    assert combine([done, cancelled, busy]) is busy
    assert combine([Outcome(Kind.SUPERSEDED), cancelled]) is cancelled
    with pytest.raises(ValueError):
        combine([])


@pytest.mark.parametrize("kind", list(Kind))
def test_which_outcomes_end_a_message_early(kind: Kind) -> None:
    unfinished = {Kind.TRANSIENT, Kind.CANCELLED, Kind.SUPERSEDED, Kind.BUSY}
    assert Outcome(kind).stops_message is (kind in unfinished)


def test_a_worker_fault_travels_with_its_outcome() -> None:
    fault = WorkerFault("disk full")
    assert decide(Outcome(Kind.CANCELLED, str(fault), fault=fault), 1, POLICY).action is Action.RELEASE


# -- policies ------------------------------------------------------------------------------------------------------


def test_receive_backoff_doubles_to_its_cap_and_gives_up() -> None:
    backoff = ReceiveBackoff(max_failures=5, cap_s=30.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert [backoff.gives_up(n) for n in (1, 4, 5, 6)] == [False, False, True, True]


def test_shutdown_policy() -> None:
    policy = ShutdownPolicy(max_jobs=2, idle_timeout_s=10)
    assert policy.stop_reason(handled=1, idle_s=3) is None
    assert policy.stop_reason(handled=2, idle_s=3) == "max-jobs"
    assert policy.stop_reason(handled=0, idle_s=10) == "idle-timeout"
    assert policy.receive_wait(20, idle_s=7.5) == 3  # the long poll does not overrun the idle timeout
    assert ShutdownPolicy().stop_reason(10**6, 10**6) is None
    assert ShutdownPolicy().receive_wait(20, 10**6) == 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stop_gives_the_job_its_grace_period_and_a_second_stop_none() -> None:
    clock = Clock()
    stop = StopRequest(grace_s=30, clock=clock)
    stop.request("SIGTERM", busy=True)
    assert stop.requested and stop.reason == "SIGTERM" and stop.deadline == 130
    clock.now = 129.9
    assert not stop.grace_over()
    stop.request("SIGINT", busy=True)  # again: no more grace; the first reason stays
    assert stop.reason == "SIGTERM" and stop.deadline == 129.9 and stop.grace_over()


def test_a_stop_between_receive_and_job_gives_the_full_grace() -> None:
    clock = Clock()
    stop = StopRequest(grace_s=5, clock=clock)
    stop.request("idle", busy=False)
    assert stop.deadline is None
    stop.job_started()
    assert stop.deadline == 105
    stop.job_ended()
    assert stop.deadline is None and not stop.grace_over()


def test_an_immediate_stop_cancels_at_once() -> None:
    stop = StopRequest(grace_s=90, clock=Clock())
    stop.request("worker fault", immediate=True, busy=True)
    assert stop.grace_over()


def test_a_job_running_too_long_is_cancelled_once() -> None:
    ctx = JobContext(attempt=1, started=0.0)
    assert not ctx.time_out(60, now=100.0)  # no job yet (parsing, recording): not timed
    ctx.job = (1, "run")
    assert not ctx.time_out(60, now=59.0)
    assert ctx.time_out(60, now=61.0) and ctx.timed_out and ctx.cancel.is_set()
    assert not ctx.time_out(60, now=62.0)


def test_losing_the_lease_keeps_the_first_reason_and_cancels() -> None:
    ctx = JobContext(attempt=1, message_id="m")
    ctx.lose_lease("receipt invalid")
    ctx.lose_lease("superseded")
    assert ctx.lease_lost == "receipt invalid" and ctx.cancel.is_set()


# -- the lease's dead-letter routing (a recording SQS: what is sent, deleted, made visible) -----------------------


class RecordingSqs:
    def __init__(self, fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def _call(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, kwargs))
        if name in self.fail:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, name)
        return {}

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("send_message", kwargs)

    def delete_message(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("delete_message", kwargs)

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("change_message_visibility", kwargs)


def lease_on(sqs: RecordingSqs, dlq_url: str | None, has_redrive: bool | None) -> Lease:
    queue = MessageQueue(sqs, "q", None, 300)
    queue.url, queue.dlq_url, queue.has_redrive = "q-url", dlq_url, has_redrive
    message = {"ReceiptHandle": "r", "MessageId": "m", "Body": "x", "Attributes": {"ApproximateReceiveCount": "2"}}
    return Lease(queue, message)


def test_dead_letter_sends_to_the_dlq_before_deleting() -> None:
    sqs = RecordingSqs()
    lease_on(sqs, "dlq-url", True).dead_letter("corrupt", "w1")
    assert [name for name, _ in sqs.calls] == ["send_message", "delete_message"]
    attributes = sqs.calls[0][1]["MessageAttributes"]
    assert attributes["crowdcount-error"]["StringValue"] == "corrupt"
    assert attributes["crowdcount-attempt"]["StringValue"] == "2"


def test_dead_letter_without_a_writable_dlq_leaves_the_message_to_the_redrive_policy() -> None:
    sqs = RecordingSqs(fail={"send_message"})
    lease_on(sqs, "dlq-url", None).dead_letter("corrupt", "w1")
    assert [name for name, _ in sqs.calls] == ["send_message", "change_message_visibility"]  # never deleted
    assert sqs.calls[1][1]["VisibilityTimeout"] == 0


def test_dead_letter_drops_only_when_there_is_neither_dlq_nor_redrive() -> None:
    sqs = RecordingSqs()
    lease_on(sqs, None, False).dead_letter("corrupt", "w1")
    assert [name for name, _ in sqs.calls] == ["delete_message"]
    sqs = RecordingSqs()
    lease_on(sqs, None, None).dead_letter("corrupt", "w1")  # unknown redrive: assume one, never delete
    assert [name for name, _ in sqs.calls] == ["change_message_visibility"]


def test_an_invalid_receipt_means_the_lease_is_lost() -> None:
    class Gone(RecordingSqs):
        def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ReceiptHandleIsInvalid", "Message": "gone"}}, "Change")

    lease = lease_on(Gone(), None, None)
    assert lease.attempt == 2 and lease.extend() == "the message is no longer this worker's (ReceiptHandleIsInvalid)"
    assert lease_on(RecordingSqs(), None, None).extend() is None


def test_a_failing_beat_does_not_end_the_heartbeat() -> None:
    import threading

    from crowdcount.aws.lease import Heartbeat

    beats: list[int] = []
    twice = threading.Event()

    def beat() -> None:
        beats.append(1)
        if len(beats) >= 2:
            twice.set()
        raise RuntimeError("DynamoDB down")

    heartbeat = Heartbeat(0.05, beat).start()
    assert twice.wait(5)
    heartbeat.stop()
    assert not heartbeat.thread.is_alive()
