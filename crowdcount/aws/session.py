"""Building boto3 sessions and clients against AWS, the local sandbox or any endpoint.

The endpoint is, first match wins: an explicit ``endpoint_url``, ``$AWS_ENDPOINT_URL`` (boto3 reads it
itself), the config's ``aws_endpoint_url``, else AWS. No module-level clients: callers build them here and
pass them in.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import InvalidRegionError

from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AwsContext:
    """A boto3 session plus the endpoint to talk to; :meth:`client` builds clients for any service."""

    session: boto3.Session
    endpoint_url: str | None = None

    def client(self, service: str, region: str | None = None, **kwargs: Any) -> Any:
        """A client for ``service`` (with retries and timeouts suited to a long-running worker)."""
        config = BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=70)
        name = region or self.session.region_name
        try:
            return self.session.client(
                service, region_name=name, endpoint_url=self.endpoint_url, config=kwargs.pop("config", config), **kwargs
            )
        except InvalidRegionError:
            raise ConfigError(
                f"{name!r} is not an AWS region name", "set aws_region (or dynamodb.region) like us-east-1"
            ) from None


def make_context(
    region: str,
    endpoint_url: str | None = None,
    profile: str | None = None,
    session: boto3.Session | None = None,
) -> AwsContext:
    """An :class:`AwsContext` for ``region``. With an endpoint (sandbox) and no credentials anywhere,
    dummy credentials are used, since moto accepts any."""
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    if endpoint_url:
        check_endpoint_url(endpoint_url)
    if session is None:
        session = boto3.Session(profile_name=profile, region_name=region)
        if endpoint_url and session.get_credentials() is None:
            session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return AwsContext(session=session, endpoint_url=endpoint_url)


def check_endpoint_url(url: str) -> None:
    """:class:`ConfigError` unless ``url`` is an ``http://`` or ``https://`` URL with a host (botocore would raise
    a bare ValueError, or fail on the first request)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a bad port raises ValueError)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"endpoint URL {url!r} is not an http:// or https:// URL",
            "e.g. --endpoint-url http://127.0.0.1:4566; check --endpoint-url, AWS_ENDPOINT_URL and aws_endpoint_url",
        )
