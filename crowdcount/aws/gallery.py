"""A face gallery in a DynamoDB table (one item per person), opened as ``dynamodb://TABLE``: importing this
module registers the scheme with :func:`crowdcount.faces.gallery.register_scheme`. The
table is keyed by ``Name`` (a string); each item holds the person's ``Embeddings`` (float32 bytes, ``Count``
vectors of ``Dim`` numbers), the ``Embedder`` that made them, ``Details`` (a map of strings), the names of
the enrolment photos and the enrolment times. Photos are never stored in the table.

One more item, keyed :data:`VERSION_KEY` (a name no person can have: it holds a control character), counts
the table's changes: every enrolment, removal and forgetting adds one to its ``Version``, so readers (the
worker, the upload handler) notice a change with one ``GetItem`` instead of reading the whole table.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from crowdcount.aws.errors import error_code, is_aws_exception, to_aws_error
from crowdcount.aws.session import AwsContext
from crowdcount.config import Config
from crowdcount.errors import ConfigError, GalleryError
from crowdcount.faces.gallery import Gallery, Person, register_scheme
from crowdcount.faces.gallery import open_gallery as faces_open_gallery

logger = logging.getLogger(__name__)

SCHEME = "dynamodb://"
#: The key of the item counting the table's changes (``check_name`` refuses control characters).
VERSION_KEY = "\x1fcrowdcount-gallery-version"


class DynamoDBGallery(Gallery):
    """A gallery in the DynamoDB table ``table`` (created on the first enrolment when missing).

    Args:
        client: a boto3 DynamoDB client (injected: AWS, the sandbox or moto alike).
        table: the table name.
    """

    def __init__(self, client: Any, table: str, endpoint: str | None = None) -> None:
        self.client = client
        self.table = table
        self.endpoint = endpoint
        self.location = f"{SCHEME}{table}"
        self._cache: list[Person] | None = None
        self._embedder: dict[str, Any] | None = None
        self._version: Hashable = None

    def _fail(self, exc: BaseException, action: str) -> Exception:
        if error_code(exc) == "ResourceNotFoundException":
            return GalleryError(f"gallery table {self.table!r} does not exist", "enrol someone first to create it")
        if is_aws_exception(exc):
            return to_aws_error(exc, f"{action} gallery table {self.table!r}", self.endpoint)
        return exc  # type: ignore[return-value]

    def _scan(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            response = self.client.scan(**kwargs)
            items.extend(i for i in response.get("Items", []) if i.get("Name", {}).get("S") != VERSION_KEY)
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _load(self) -> list[Person]:
        if self._cache is None:
            self._version = self.version()  # before the scan: a change during it is seen next time
            self._embedder = None
            try:
                items = self._scan()
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    items = []
                else:
                    raise self._fail(exc, "reading") from None
            people = []
            for item in items:
                try:
                    person, embedder = _from_item(item)
                except (KeyError, ValueError) as exc:
                    raise GalleryError(
                        f"gallery {self.location} is corrupt: item {item.get('Name', {}).get('S')!r}: {exc}",
                        "remove that item, or enrol the person again",
                    ) from None
                if self._embedder is None:
                    self._embedder = embedder
                elif embedder != self._embedder:
                    raise GalleryError(f"gallery {self.location} mixes embedders: {self._embedder} and {embedder}")
                people.append(person)
            self._cache = sorted(people, key=lambda p: p.name)
        return self._cache

    def embedder(self) -> dict[str, Any] | None:
        self._load()
        return self._embedder

    def people(self) -> list[Person]:
        return list(self._load())

    def version(self) -> Hashable:
        """The table's change count (``0`` for a table written by a crowdcount without one, ``None`` when there
        is no table)."""
        try:
            item = self.client.get_item(TableName=self.table, Key={"Name": {"S": VERSION_KEY}}, ConsistentRead=True)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise self._fail(exc, "reading") from None
        return int(item.get("Item", {}).get("Version", {}).get("N", 0))

    def refresh(self) -> bool:
        if self._cache is not None and self.version() == self._version:
            return False
        self._cache = None
        self._load()
        logger.info("gallery %s changed: re-read (%d people)", self.location, len(self._cache or []))
        return True

    def _bump(self) -> None:
        """Count one change (after it is made: a reader that sees the new count reads the new items)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"Name": {"S": VERSION_KEY}},
                UpdateExpression="ADD Version :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except Exception as exc:
            raise self._fail(exc, "writing to") from None

    def _ensure_table(self) -> None:
        try:
            self.client.describe_table(TableName=self.table)
            return
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise self._fail(exc, "describing") from None
        try:
            self.client.create_table(
                TableName=self.table,
                KeySchema=[{"AttributeName": "Name", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "Name", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
            logger.info("created gallery table %s", self.table)
        except Exception as exc:
            raise self._fail(exc, "creating") from None

    def _put(self, person: Person, embedder: Mapping[str, Any]) -> None:
        self._ensure_table()
        try:
            self.client.put_item(TableName=self.table, Item=_to_item(person, embedder))
        except Exception as exc:
            raise self._fail(exc, "writing to") from None
        self._bump()
        self._cache = None

    def _delete(self, name: str) -> None:
        try:
            self.client.delete_item(TableName=self.table, Key={"Name": {"S": name}})
        except Exception as exc:
            raise self._fail(exc, "deleting from") from None
        self._bump()
        self._cache = None


def _to_item(person: Person, embedder: Mapping[str, Any]) -> dict[str, Any]:
    vectors = np.ascontiguousarray(person.embeddings, np.float32)
    item: dict[str, Any] = {
        "Name": {"S": person.name},
        "Embedder": {"S": str(embedder["name"])},
        "Dim": {"N": str(int(embedder["dim"]))},
        "Count": {"N": str(len(vectors))},
        "Embeddings": {"B": vectors.tobytes()},
        "Details": {"M": {str(k): {"S": str(v)} for k, v in person.details.items()}},
        "Sources": {"L": [{"S": s} for s in person.sources]},
        "EnrolledAt": {"S": person.enrolled_at},
        "UpdatedAt": {"S": person.updated_at},
    }
    return item


def _from_item(item: Mapping[str, Any]) -> tuple[Person, dict[str, Any]]:
    dim = int(item["Dim"]["N"])
    count = int(item["Count"]["N"])
    raw = item["Embeddings"]["B"]
    vectors = np.frombuffer(bytes(raw), np.float32)
    if dim < 1 or vectors.size != dim * count or not count:
        raise ValueError(f"{vectors.size} numbers for {count} vectors of {dim}")
    person = Person(
        name=item["Name"]["S"],
        embeddings=vectors.reshape(count, dim).copy(),
        details={k: v.get("S", "") for k, v in item.get("Details", {}).get("M", {}).items()},
        sources=[s["S"] for s in item.get("Sources", {}).get("L", [])],
        enrolled_at=item.get("EnrolledAt", {}).get("S", ""),
        updated_at=item.get("UpdatedAt", {}).get("S", ""),
    )
    return person, {"name": item["Embedder"]["S"], "dim": dim}


def open_dynamodb_gallery(location: str, options: Mapping[str, Any]) -> DynamoDBGallery:
    """The opener of ``dynamodb://TABLE`` (registered with :func:`crowdcount.faces.gallery.register_scheme`):
    its client from ``options["aws"]`` (an :class:`AwsContext`), else from ``options["config"]`` (its region
    and endpoint, ``options["endpoint_url"]`` overriding it); the table's region is ``dynamodb.region``."""
    table = location[len(SCHEME) :].strip("/") if location.startswith(SCHEME) else ""
    if not table:
        raise GalleryError(f"gallery location {location!r} names no table", "e.g. dynamodb://crowdcount-faces")
    config: Config | None = options.get("config")
    ctx: AwsContext | None = options.get("aws")
    if ctx is None:
        if config is None:
            raise GalleryError(f"gallery {location} needs AWS settings")
        from crowdcount.aws.resources import context_from_config

        ctx = context_from_config(config, options.get("endpoint_url"))
    region = options.get("region") or (config.get("dynamodb.region") if config is not None else None)
    return DynamoDBGallery(ctx.client("dynamodb", region), table, ctx.endpoint_url)


register_scheme("dynamodb", open_dynamodb_gallery)


def open_gallery(location: str, ctx: AwsContext | None = None, region: str | None = None) -> Gallery:
    """The gallery at ``location`` (any registered scheme, or a local file path), a DynamoDB one with clients
    from ``ctx``: :func:`crowdcount.faces.gallery.open_gallery` with this package's options."""
    return faces_open_gallery(location, {"aws": ctx, "region": region})


def redact_s3(s3: Any, uri: str, name: str, endpoint: str | None = None, check: bool = True) -> Any:
    """Redact ``name`` from the JSON result files under ``s3://BUCKET/PREFIX`` (every ``.json`` key), each
    rewritten in place when it changed (:func:`crowdcount.faces.redact.redact_text`). Older object versions
    of a versioned bucket are not touched. ``check=False``: ``name`` is taken as it is (see
    :func:`crowdcount.faces.redact.redact_files`)."""
    from crowdcount.faces.gallery import check_name
    from crowdcount.faces.redact import Redaction, redact_text

    if check or not name:
        name = check_name(name)
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"--results {uri!r} names no bucket", "e.g. s3://my-bucket/results/")
    report = Redaction(uri)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if not key.endswith(".json"):
                    continue
                try:
                    text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
                except UnicodeDecodeError:
                    logger.warning("s3://%s/%s skipped: not UTF-8", bucket, key)
                    continue
                new, count = redact_text(text, name)
                if new is not None:
                    s3.put_object(Bucket=bucket, Key=key, Body=new.encode("utf-8"), ContentType="application/json")
                report.add(f"s3://{bucket}/{key}", count)
    except Exception as exc:
        if is_aws_exception(exc):
            raise to_aws_error(exc, f"redacting result files in {uri}", endpoint) from None
        raise
    return report
