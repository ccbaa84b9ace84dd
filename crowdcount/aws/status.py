"""The video's DynamoDB document: one entry per processing step in its ``process_steps`` list.

The document (table keyed by ``VideoId``, a number) keeps the seed's shape::

    {"VideoId": 42,
     "video": {"bucket": "...", "key": "..."},                       # written by `crowdcount submit`
     "process_steps": [
        {"step": "video_split", ...},                                  # other steps, never touched here
        {"step": "human_detector", "state": "running" | "done" | "error",
         "attempt": 1, "run_id": "...", "worker": "host:pid", "message_id": "...",
         "input": {"bucket", "key", "etag", "size"}, "config": "<sha of the analyzer config>",
         "started_at": "...", "updated_at": "...", "rev": 3,
         "result_file": {"bucket", "key"}, "summary": {...}, "timings": {...},   # when done
         "reason": "...", "error_type": "...", "retryable": false}]}         # when error

Every write is one atomic ``update_item`` that touches only this step's entry, guarded by a condition
(compare-and-swap), never a read-modify-write ``put_item`` of the whole document:

* a new entry is appended with ``list_append`` on condition that the list still has the length that was
  read (``size(process_steps) = :n``), so two writers cannot both append the step;
* an existing entry ``process_steps[i]`` is replaced on condition that it is still this step at the same
  revision (``rev``) when starting, or still owned by this run (``run_id``) when finishing, so a worker
  that lost its message to another one cannot overwrite the other's state.

A failed condition means someone else wrote in between: the document is read again and the decision
re-made (a few times, then :class:`~crowdcount.errors.AWSError`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from crowdcount.aws.errors import error_code, is_aws_exception, to_aws_error
from crowdcount.errors import AWSError, CrowdcountError

logger = logging.getLogger(__name__)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_RETRIES = 8


class StepSuperseded(CrowdcountError):
    """Another run took over this step (the message was redelivered to another worker meanwhile)."""


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_dynamo(value: Any) -> Any:
    """Plain Python (floats included) to what :class:`TypeSerializer` accepts (floats become Decimals)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(round(value, 6)))
    if isinstance(value, dict):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Deserialised DynamoDB values back to plain Python (Decimals become ints or floats)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [from_dynamo(v) for v in value]
    return value


def serialize(value: Any) -> dict[str, Any]:
    """One attribute value in DynamoDB's wire format."""
    return _serializer.serialize(to_dynamo(value))


def deserialize_item(item: dict[str, Any]) -> dict[str, Any]:
    """A whole item from DynamoDB's wire format to plain Python."""
    return {k: from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def lease_left(entry: dict[str, Any] | None, now: float | None = None) -> float:
    """Seconds left on a ``running`` entry's lease (``lease_until``, epoch seconds); 0 when expired or none."""
    if not entry or entry.get("state") != "running":
        return 0.0
    until = entry.get("lease_until")
    if not isinstance(until, (int, float)):
        return 0.0
    return max(0.0, float(until) - (time.time() if now is None else now))


@dataclass(frozen=True)
class StartResult:
    """What :meth:`StatusStore.start` did: ``started`` (with the entry written), or found the step
    ``already_done``, ``already_failed`` or ``busy`` (running under another message's live lease; ``entry``
    is then the existing one)."""

    started: bool
    entry: dict[str, Any]
    previous: dict[str, Any] | None = None
    busy: bool = False

    @property
    def already_done(self) -> bool:
        return not self.started and self.entry.get("state") == "done"

    @property
    def already_failed(self) -> bool:
        return not self.started and self.entry.get("state") == "error"


class StatusStore:
    """Reads and atomically updates one step's entry in the videos table.

    Args:
        dynamodb: a boto3 DynamoDB *client*.
        table: the table name (``dynamodb.table_id``).
        step: the step name (``human_detection.result_step``, ``"human_detector"``).
    """

    def __init__(self, dynamodb: Any, table: str, step: str = "human_detector") -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.step = step

    # -- reading -------------------------------------------------------------------------------------
    def get_document(self, video_id: int) -> dict[str, Any] | None:
        """The whole document of ``video_id`` (plain Python), or ``None`` when there is none."""
        try:
            response = self.dynamodb.get_item(
                TableName=self.table, Key={"VideoId": {"N": str(video_id)}}, ConsistentRead=True
            )
        except Exception as exc:
            if is_aws_exception(exc):
                raise to_aws_error(exc, f"reading VideoId {video_id} from table {self.table!r}") from None
            raise
        item = response.get("Item")
        return deserialize_item(item) if item else None

    def find_step(self, document: dict[str, Any] | None) -> tuple[int | None, dict[str, Any] | None]:
        """The index and entry of this step in a document's ``process_steps`` (``None, None`` when absent)."""
        steps = (document or {}).get("process_steps")
        if isinstance(steps, list):
            for i, entry in enumerate(steps):
                if isinstance(entry, dict) and entry.get("step") == self.step:
                    return i, entry
        return None, None

    def get_step(self, video_id: int) -> dict[str, Any] | None:
        """This step's entry for ``video_id`` (``None`` when the document or the entry is missing)."""
        return self.find_step(self.get_document(video_id))[1]

    # -- writing -------------------------------------------------------------------------------------
    def ensure_document(self, video_id: int, video: dict[str, Any] | None = None) -> None:
        """Create the document if missing (``process_steps`` empty), recording where the video is; existing
        steps are kept."""
        names = {"#ps": "process_steps", "#c": "created_at"}
        values: dict[str, Any] = {":empty": serialize([]), ":now": serialize(now_iso())}
        update = "SET #ps = if_not_exists(#ps, :empty), #c = if_not_exists(#c, :now)"
        if video is not None:
            names["#v"] = "video"
            values[":video"] = serialize(video)
            update += ", #v = :video"
        self._update(video_id, update, None, names, values, f"creating the document of VideoId {video_id}")

    def start(
        self,
        video_id: int,
        entry: dict[str, Any],
        is_same_input: Callable[[dict[str, Any]], bool] | None = None,
        is_failed_redelivery: Callable[[dict[str, Any]], bool] | None = None,
    ) -> StartResult:
        """Record this step as running (``entry`` holds ``run_id``, ``attempt``, ``input``, ``lease_until`` ...),
        unless it is already ``done`` and ``is_same_input(existing_entry)`` says the input is unchanged, it is
        ``error`` and ``is_failed_redelivery(existing_entry)`` says that failure is final for this message, or it
        is ``running`` under a live lease of another message (``busy``: a duplicate message must not run the
        analysis twice). A running entry of the *same* message is taken over at once: SQS redelivers a message
        only once its previous receiver's visibility lapsed (the worker died or lost its lease)."""
        for _ in range(_RETRIES):
            document = self.get_document(video_id)
            index, existing = self.find_step(document)
            state = (existing or {}).get("state")
            if (
                existing is not None
                and state == "running"
                and lease_left(existing) > 0
                and existing.get("message_id") != entry.get("message_id")
            ):
                return StartResult(started=False, entry=existing, busy=True)
            if existing is not None and state == "done" and is_same_input and is_same_input(existing):
                return StartResult(started=False, entry=existing)
            if existing is not None and state == "error" and is_failed_redelivery and is_failed_redelivery(existing):
                return StartResult(started=False, entry=existing)
            now = now_iso()
            new = {
                **entry,
                "step": self.step,
                "state": "running",
                "started_at": now,
                "updated_at": now,
                "rev": int((existing or {}).get("rev", 0)) + 1,
            }
            if self._write_entry(video_id, document, index, existing, new, owner_run_id=None):
                return StartResult(started=True, entry=new, previous=existing)
        raise AWSError(f"could not record step {self.step!r} of VideoId {video_id}: too many concurrent writers")

    def finish(self, video_id: int, run_id: str, state: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Record the end of the run ``run_id``: ``state`` ``"done"`` or ``"error"`` with ``fields`` (``result_file``,
        or ``reason`` ...). :class:`StepSuperseded` when another run owns the step now."""
        for _ in range(_RETRIES):
            document = self.get_document(video_id)
            index, existing = self.find_step(document)
            if existing is None or existing.get("run_id") != run_id:
                owner = (existing or {}).get("run_id")
                raise StepSuperseded(
                    f"step {self.step!r} of VideoId {video_id} is now owned by run {owner} (not {run_id}); "
                    f"not recording {state!r}"
                )
            now = now_iso()
            new = {**existing, **fields, "state": state, "updated_at": now, "finished_at": now}
            new["rev"] = int(existing.get("rev", 0)) + 1
            if state == "done":
                for stale in ("reason", "error_type", "retryable"):
                    new.pop(stale, None)
            if self._write_entry(video_id, document, index, existing, new, owner_run_id=run_id):
                return new
        raise AWSError(f"could not record step {self.step!r} of VideoId {video_id}: too many concurrent writers")

    def renew(self, video_id: int, run_id: str, lease_seconds: float) -> float:
        """Extend run ``run_id``'s lease to ``lease_seconds`` from now; returns the new ``lease_until``.
        :class:`StepSuperseded` when another run owns the step (the lease was lost)."""
        for _ in range(_RETRIES):
            document = self.get_document(video_id)
            index, existing = self.find_step(document)
            if existing is None or existing.get("run_id") != run_id or existing.get("state") != "running":
                owner = (existing or {}).get("run_id")
                raise StepSuperseded(f"step {self.step!r} of VideoId {video_id} is now owned by run {owner}")
            until = round(time.time() + lease_seconds, 3)
            new = {**existing, "lease_until": until, "updated_at": now_iso()}
            # only over a running entry: a renewal racing the run's end must not write `running` over `done`
            if self._write_entry(video_id, document, index, existing, new, owner_run_id=run_id, running=True):
                return until
        raise AWSError(f"could not renew the lease of VideoId {video_id}: too many concurrent writers")

    def check_owner(self, video_id: int, run_id: str) -> dict[str, Any]:
        """The entry, when run ``run_id`` still owns the step with a live lease; :class:`StepSuperseded` otherwise
        (checked before a result upload, so that a superseded worker never overwrites a newer result)."""
        existing = self.get_step(video_id)
        if existing is None or existing.get("run_id") != run_id or existing.get("state") != "running":
            owner = (existing or {}).get("run_id")
            raise StepSuperseded(f"step {self.step!r} of VideoId {video_id} is now owned by run {owner} (not {run_id})")
        if "lease_until" in existing and lease_left(existing) <= 0:
            raise StepSuperseded(f"the lease of run {run_id} on VideoId {video_id} expired")
        return existing

    def record_error_if_idle(self, video_id: int, fields: dict[str, Any]) -> bool:
        """Record an ``error`` entry for a job that never ran (a malformed message naming ``video_id``), unless
        the step is running or done: a bad duplicate message must not overwrite a good run's state."""
        for _ in range(_RETRIES):
            document = self.get_document(video_id)
            index, existing = self.find_step(document)
            if existing is not None and existing.get("state") in ("running", "done"):
                return False
            now = now_iso()
            new = {
                **fields,
                "step": self.step,
                "state": "error",
                "updated_at": now,
                "finished_at": now,
                "rev": int((existing or {}).get("rev", 0)) + 1,
            }
            if self._write_entry(video_id, document, index, existing, new, owner_run_id=None):
                return True
        raise AWSError(f"could not record step {self.step!r} of VideoId {video_id}: too many concurrent writers")

    def _write_entry(
        self,
        video_id: int,
        document: dict[str, Any] | None,
        index: int | None,
        existing: dict[str, Any] | None,
        new: dict[str, Any],
        owner_run_id: str | None,
        running: bool = False,
    ) -> bool:
        """One conditional write; ``False`` when the condition failed (someone wrote in between). ``running``:
        only over an entry still ``running``."""
        names = {"#ps": "process_steps"}
        values: dict[str, Any] = {":new": serialize([new] if index is None else new)}
        if index is None:
            steps = (document or {}).get("process_steps")
            length = len(steps) if isinstance(steps, list) else 0
            update = "SET #ps = list_append(if_not_exists(#ps, :empty), :new)"
            condition = "attribute_not_exists(#ps) OR size(#ps) = :n" if length == 0 else "size(#ps) = :n"
            values[":empty"] = serialize([])
            values[":n"] = serialize(length)
        else:
            names.update({"#step": "step"})
            values[":step"] = serialize(self.step)
            update = f"SET #ps[{index}] = :new"
            condition = f"#ps[{index}].#step = :step"
            if owner_run_id is not None:
                names["#run"] = "run_id"
                values[":run"] = serialize(owner_run_id)
                condition += f" AND #ps[{index}].#run = :run"
                if running:
                    names["#state"] = "state"
                    values[":running"] = serialize("running")
                    condition += f" AND #ps[{index}].#state = :running"
            else:
                names["#rev"] = "rev"
                if existing is not None and "rev" in existing:
                    values[":rev"] = serialize(existing["rev"])
                    condition += f" AND #ps[{index}].#rev = :rev"
                else:
                    condition += f" AND attribute_not_exists(#ps[{index}].#rev)"
        try:
            self._update(video_id, update, condition, names, values, f"updating VideoId {video_id}", raw=True)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                logger.debug("VideoId %s changed meanwhile; reading it again", video_id)
                return False
            if is_aws_exception(exc):
                raise to_aws_error(exc, f"updating VideoId {video_id} in table {self.table!r}") from None
            raise
        return True

    def _update(
        self,
        video_id: int,
        update: str,
        condition: str | None,
        names: dict[str, str],
        values: dict[str, Any],
        action: str,
        raw: bool = False,
    ) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"VideoId": {"N": str(video_id)}},
            "UpdateExpression": update,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            self.dynamodb.update_item(**kwargs)
        except Exception as exc:
            if raw or not is_aws_exception(exc):
                raise
            raise to_aws_error(exc, f"{action} in table {self.table!r}") from None
