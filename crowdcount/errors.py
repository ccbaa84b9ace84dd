"""Errors that users can fix. The CLI prints them as one line and maps them to exit codes in one place.

Anything that is *not* a :class:`CrowdcountError` is a bug and is shown with its traceback.
"""

from __future__ import annotations


class CrowdcountError(Exception):
    """Base class of expected errors: a message saying what is wrong and, ideally, how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(CrowdcountError):
    """A bad configuration key or value, in variables.json, the environment or a CLI option."""

    exit_code = 2


class DetectorError(CrowdcountError):
    """An unknown detector, bad detector arguments, or a model that cannot be loaded."""

    exit_code = 2


class VideoError(CrowdcountError):
    """A video that is missing, unreadable, empty or otherwise cannot be analysed."""

    exit_code = 1


class AWSError(CrowdcountError):
    """AWS (or the local sandbox) cannot be reached, or a bucket, queue or table is missing."""

    exit_code = 3


class MessageError(CrowdcountError):
    """A queue message that is not a valid job (bad JSON, missing keys, wrong types).

    ``video_id``: the message's VideoId when it could be read (for the logs), else None."""

    exit_code = 1
    video_id: int | None = None


class BrokerError(CrowdcountError):
    """A message broker (Kafka, Redis) cannot be reached or refuses a request."""

    exit_code = 3


class GalleryError(CrowdcountError):
    """A face gallery that cannot be used: corrupt or of another embedder, a duplicate or unknown name."""

    exit_code = 2


class PhotoError(CrowdcountError):
    """A photo that cannot be enrolled: unreadable, or showing no face or several faces."""

    exit_code = 1
