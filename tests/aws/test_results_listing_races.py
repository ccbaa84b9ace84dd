"""``find --in s3://...`` reads every result file under a prefix: one deleted between the listing and its reading
(a result replaced, a retention rule) is skipped, not the end of the whole search (moto)."""

from __future__ import annotations

import json
from typing import Any

from crowdcount.aws.results import result_documents

from .support import MockAws


def test_a_result_deleted_after_the_listing_is_skipped(aws: MockAws) -> None:
    document = {"video": {"name": "v.mp4"}, "frames": [], "tracking": {"people": []}}
    for key in ("results/a.json", "results/b.json", "results/c.json"):
        aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=json.dumps(document).encode())

    class DeletingB:
        """The bucket's client, where b.json is deleted just before it is read."""

        def __init__(self, s3: Any) -> None:
            self.s3 = s3

        def get_paginator(self, name: str) -> Any:
            return self.s3.get_paginator(name)

        def get_object(self, **kwargs: Any) -> Any:
            if kwargs["Key"] == "results/b.json":
                self.s3.delete_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"])
            return self.s3.get_object(**kwargs)

    found = [uri for uri, _ in result_documents(DeletingB(aws.s3), f"s3://{aws.bucket}/results/")]
    assert found == [f"s3://{aws.bucket}/results/a.json", f"s3://{aws.bucket}/results/c.json"]
