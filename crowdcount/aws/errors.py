"""Turning botocore exceptions into one-line :class:`~crowdcount.errors.AWSError` s that say what failed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from crowdcount.errors import AWSError

#: Error codes meaning "this object, bucket, queue or table does not exist".
NOT_FOUND_CODES = frozenset(
    {
        "404",
        "NoSuchKey",
        "NoSuchBucket",
        "NotFound",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a :class:`ClientError` (``""`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` says that the thing asked for does not exist."""
    return error_code(exc) in NOT_FOUND_CODES


def is_aws_exception(exc: BaseException) -> bool:
    """Whether ``exc`` comes from botocore (a service error or a transport/credentials failure)."""
    return isinstance(exc, (ClientError, BotoCoreError))


def _endpoint_of(exc: BaseException) -> str | None:
    """``scheme://host:port`` of the URL a connection error names (botocore keeps it in ``kwargs``)."""
    url = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "")
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc or parts.netloc.endswith("amazonaws.com"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def to_aws_error(exc: BaseException, action: str, endpoint: str | None = None, hint: str | None = None) -> AWSError:
    """An :class:`AWSError` for a failed ``action`` (e.g. ``"receiving from queue 'q'"``)."""
    where = endpoint or _endpoint_of(exc) or "AWS"
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return AWSError(
            f"{action}: cannot reach {where}",
            hint or "is the sandbox running (crowdcount sandbox)? check --endpoint-url / AWS_ENDPOINT_URL",
        )
    if isinstance(exc, ReadTimeoutError):
        return AWSError(f"{action}: {where} did not answer in time", hint)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return AWSError(f"{action}: no AWS credentials", hint or "set AWS_PROFILE or AWS_ACCESS_KEY_ID/SECRET")
    if isinstance(exc, ClientError):
        error: dict[str, Any] = exc.response.get("Error", {})
        code = error.get("Code", "?")
        message = error.get("Message") or ""
        return AWSError(f"{action}: {code}{': ' + message if message else ''}", hint)
    return AWSError(f"{action}: {type(exc).__name__}: {exc}", hint)
