"""Result files in S3, for searches over a results bucket (``crowdcount find --in s3://BUCKET/PREFIX``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from crowdcount.aws.errors import error_code, is_aws_exception, to_aws_error
from crowdcount.errors import ConfigError

logger = logging.getLogger(__name__)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)`` (:class:`ConfigError` when it is not one)."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(f"{uri!r} is not an S3 location", "give s3://BUCKET or s3://BUCKET/PREFIX")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def result_documents(s3: Any, uri: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every crowdcount result file (``.json`` with ``frames`` and ``tracking``) under ``uri``, as
    ``(s3 uri, document)``; other objects are skipped. AWS failures raise :class:`crowdcount.errors.AWSError`."""
    bucket, prefix = parse_s3_uri(uri)
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    except Exception as exc:
        if is_aws_exception(exc):
            raise to_aws_error(exc, f"listing {uri}") from None
        raise
    for key in sorted(keys):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404"):  # deleted since the listing (replaced, retention): gone
                logger.info("s3://%s/%s was deleted since the listing: skipped", bucket, key)
                continue
            if is_aws_exception(exc):
                raise to_aws_error(exc, f"reading s3://{bucket}/{key}") from None
            raise
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.info("s3://%s/%s is not JSON: skipped", bucket, key)
            continue
        if isinstance(document, dict) and isinstance(document.get("frames"), list) and "tracking" in document:
            yield f"s3://{bucket}/{key}", document
