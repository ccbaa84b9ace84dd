"""Deployment errors, and the translation of boto3/botocore failures into one-line :class:`AWSError` s.

They live here rather than in :mod:`crowdcount.errors` so that the deploy package stays self-contained;
both subclass :class:`~crowdcount.errors.CrowdcountError`, so the CLI prints them as one line with their
exit code like every other expected error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

from crowdcount.errors import AWSError, CrowdcountError

logger = logging.getLogger(__name__)

CREDENTIALS_HINT = (
    "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or give --endpoint-url for the local sandbox"
)


class DeployError(CrowdcountError):
    """A deployment that cannot go on: no Docker engine, no GPU instance, a missing image, a failed task."""

    exit_code = 1


class TaskFailedError(DeployError):
    """A one-off task that stopped unsuccessfully; the exit status is the container's own where it has one."""

    def __init__(self, message: str, exit_code: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code if exit_code else 1


def error_code(exc: ClientError) -> str:
    """The AWS error code of a :class:`ClientError` (``""`` when absent)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn boto3/botocore failures inside the block into one-line :class:`AWSError` s saying ``action``."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise AWSError(f"no AWS credentials found while {action}", CREDENTIALS_HINT) from None
    except NoRegionError:
        raise AWSError(f"no AWS region set while {action}", "set aws_region in variables.json") from None
    except (EndpointConnectionError, ConnectTimeoutError) as exc:
        raise AWSError(f"cannot reach AWS while {action}: {exc}", "check the network or --endpoint-url") from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        if message.lstrip().startswith("<"):  # an HTML error page (a proxy, the sandbox's own failure)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            message = f"the endpoint answered HTTP {status} with an HTML page, not an AWS error"
        code = error_code(exc)
        hint = CREDENTIALS_HINT if code in {"InvalidClientTokenId", "UnrecognizedClientException"} else None
        raise AWSError(f"{action} failed: {code}: {message}", hint) from None
    except BotoCoreError as exc:
        raise AWSError(f"{action} failed: {exc}") from None
    except ResponseParserError:  # not a BotoCoreError: an HTML page where an AWS answer should be
        raise AWSError(
            f"{action} failed: the endpoint answered with something that is not an AWS response (an HTML error page?)",
            "check --endpoint-url",
        ) from None


def with_progress(exc: CrowdcountError, done: Sequence[str]) -> CrowdcountError:
    """The same error, its message extended with what was already changed, so that nothing is left
    half-registered without saying so."""
    if not done:
        return exc
    exc.message = f"{exc.message}; already done before this failure: {'; '.join(done)}"
    exc.args = (exc.message,)
    return exc
