"""The DynamoDB step status: atomic, conditional writes that never clobber other steps or other runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crowdcount.aws.status import StatusStore, StepSuperseded, serialize

from .support import MockAws


def store(aws: MockAws) -> StatusStore:
    return StatusStore(aws.dynamodb, aws.resources.table, "human_detector")


def running(run_id: str, etag: str = "e1") -> dict[str, Any]:
    return {"run_id": run_id, "attempt": 1, "input": {"bucket": "b", "key": "k", "etag": etag}}


def same_etag(etag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda entry: (entry.get("input") or {}).get("etag") == etag


def put_other_steps(aws: MockAws, video_id: int) -> None:
    """A document written by the rest of the pipeline, with a step of its own."""
    aws.dynamodb.put_item(
        TableName=aws.resources.table,
        Item={
            "VideoId": {"N": str(video_id)},
            "owner": {"S": "video_split"},
            "process_steps": serialize([{"step": "video_split", "state": "done", "parts": 3}]),
        },
    )


def test_start_creates_the_document_and_finish_records_done(aws: MockAws) -> None:
    s = store(aws)
    result = s.start(1, running("r1"))
    assert result.started and result.previous is None
    entry = s.get_step(1)
    assert entry is not None and entry["state"] == "running" and entry["run_id"] == "r1" and entry["rev"] == 1
    s.finish(1, "r1", "done", {"result_file": {"bucket": "b", "key": "r.json"}, "elapsed_s": 1.25})
    document = s.get_document(1)
    assert document is not None
    assert document["process_steps"] == [
        {**entry, "state": "done", "result_file": {"bucket": "b", "key": "r.json"}, "elapsed_s": 1.25}
        | {k: document["process_steps"][0][k] for k in ("updated_at", "finished_at", "rev")}
    ]
    assert document["process_steps"][0]["rev"] == 2


def test_other_steps_and_attributes_are_kept(aws: MockAws) -> None:
    put_other_steps(aws, 2)
    s = store(aws)
    s.start(2, running("r1"))
    s.finish(2, "r1", "error", {"reason": "bad video", "retryable": False})
    document = s.get_document(2)
    assert document is not None and document["owner"] == "video_split"
    assert [e["step"] for e in document["process_steps"]] == ["video_split", "human_detector"]
    assert document["process_steps"][0] == {"step": "video_split", "state": "done", "parts": 3}
    assert document["process_steps"][1]["state"] == "error"


def test_already_done_with_the_same_input_is_not_restarted(aws: MockAws) -> None:
    s = store(aws)
    s.start(3, running("r1"))
    s.finish(3, "r1", "done", {"result_file": {"bucket": "b", "key": "r.json"}})
    again = s.start(3, running("r2"), same_etag("e1"))
    assert again.already_done and again.entry["run_id"] == "r1"
    changed = s.start(3, running("r3", etag="e2"), same_etag("e2"))
    assert changed.started and s.get_step(3)["run_id"] == "r3"  # type: ignore[index]
    assert len(s.get_document(3)["process_steps"]) == 1  # type: ignore[index]


def test_a_run_that_lost_the_step_cannot_overwrite_it(aws: MockAws) -> None:
    s = store(aws)
    s.start(4, running("old"))
    s.start(4, running("new"))  # the message was redelivered to another worker, which took over
    with pytest.raises(StepSuperseded):
        s.finish(4, "old", "error", {"reason": "late"})
    s.finish(4, "new", "done", {"result_file": {"bucket": "b", "key": "r.json"}})
    with pytest.raises(StepSuperseded):
        s.finish(4, "old", "done", {})
    assert s.get_step(4)["state"] == "done"  # type: ignore[index]


def test_concurrent_append_by_another_writer_is_not_lost(aws: MockAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another step is appended between our read and our write: the condition fails, we read again."""
    put_other_steps(aws, 5)
    s = store(aws)
    original = s.get_document
    calls = {"n": 0}

    def racing_read(video_id: int) -> Any:
        document = original(video_id)
        calls["n"] += 1
        if calls["n"] == 1:
            aws.dynamodb.update_item(
                TableName=aws.resources.table,
                Key={"VideoId": {"N": "5"}},
                UpdateExpression="SET process_steps = list_append(process_steps, :s)",
                ExpressionAttributeValues={":s": serialize([{"step": "face_blur", "state": "running"}])},
            )
        return document

    monkeypatch.setattr(s, "get_document", racing_read)
    assert s.start(5, running("r1")).started
    steps = original(5)["process_steps"]  # type: ignore[index]
    assert [e["step"] for e in steps] == ["video_split", "face_blur", "human_detector"]
    assert calls["n"] == 2


@pytest.mark.parametrize("existing", [False, True], ids=["first-start", "restart"])
def test_interleaved_starts_record_the_step_once(aws: MockAws, monkeypatch: pytest.MonkeyPatch, existing: bool) -> None:
    """Worker B starts the step between worker A's read and A's write: A's conditional write fails (the list
    grew, or the entry's rev moved), A reads again and replaces B's entry; one entry, never two.

    (Deterministic interleaving: moto's in-process DynamoDB does not make concurrent threads' conditional
    writes atomic, real DynamoDB does.)"""
    a, b = store(aws), store(aws)
    if existing:
        a.start(6, running("r0"))
    original = a.get_document
    calls = {"n": 0}

    def racing_read(video_id: int) -> Any:
        document = original(video_id)
        calls["n"] += 1
        if calls["n"] == 1:
            b.start(6, running("rB"))
        return document

    monkeypatch.setattr(a, "get_document", racing_read)
    assert a.start(6, running("rA")).started
    steps = original(6)["process_steps"]  # type: ignore[index]
    assert len(steps) == 1 and steps[0]["run_id"] == "rA" and calls["n"] == 2
    assert steps[0]["rev"] == (3 if existing else 2)
    with pytest.raises(StepSuperseded):
        b.finish(6, "rB", "done", {})


def test_malformed_message_errors_do_not_overwrite_a_real_run(aws: MockAws) -> None:
    s = store(aws)
    assert s.record_error_if_idle(7, {"reason": "malformed"})
    assert s.get_step(7)["state"] == "error"  # type: ignore[index]
    s.start(7, running("r1"))
    assert not s.record_error_if_idle(7, {"reason": "malformed duplicate"})
    s.finish(7, "r1", "done", {})
    assert not s.record_error_if_idle(7, {"reason": "malformed duplicate"})
    assert s.get_step(7)["state"] == "done"  # type: ignore[index]
    assert "reason" not in s.get_step(7)  # type: ignore[operator]


def test_ensure_document_keeps_existing_steps(aws: MockAws) -> None:
    put_other_steps(aws, 8)
    s = store(aws)
    s.ensure_document(8, {"bucket": "b", "key": "k"})
    s.ensure_document(9)
    assert s.get_document(8)["process_steps"][0]["step"] == "video_split"  # type: ignore[index]
    assert s.get_document(8)["video"] == {"bucket": "b", "key": "k"}  # type: ignore[index]
    assert s.get_document(9)["process_steps"] == []  # type: ignore[index]
