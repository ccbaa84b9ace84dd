"""A failed renewal of the task's scale-in protection mid-job: retried at the next beat, and the protection still
dropped when the job ends (the earlier one is still on at the agent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crowdcount.aws.protection import PATH, TaskProtection

from .test_protection import FakeAgent


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()
    yield fake
    fake.close()


def test_a_failed_renewal_is_retried_and_the_protection_still_dropped(agent: FakeAgent) -> None:
    now = [1000.0]
    protection = TaskProtection(agent.uri, 10, clock=lambda: now[0])
    assert protection.enable() is True and agent.protected
    now[0] += 300  # half the lifetime: renew
    assert protection.renew_due()
    agent.refuse = {"error": {"Code": "ThrottlingException", "Message": "slow down"}}
    assert protection.enable() is False
    assert agent.protected  # the first protection holds at the agent for 5 more minutes
    assert protection.renew_due()  # so the next beat tries again (before: never, and it lapsed mid-job)
    agent.refuse = None
    assert protection.enable() is True and not protection.renew_due()
    agent.refuse = {"error": {"Code": "ThrottlingException", "Message": "slow down"}}
    now[0] += 300
    assert protection.enable() is False
    agent.refuse = None
    assert protection.disable() is True  # before: no call, and an idle task stayed protected
    assert not agent.protected
    assert [c["ProtectionEnabled"] for c in agent.calls] == [True, True, True, True, False]
    assert all(c["path"] == "/v3/abc-123" + PATH for c in agent.calls)
