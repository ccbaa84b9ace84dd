"""A result that is listed but cannot be read when it is asked for (S3 access denied, throttled, unreachable) is a
JSON error saying so (502), not a bare 500 with a traceback in the log."""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx for its test client: either works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from crowdcount.web import ResultsCatalog
from crowdcount.web.app import create_app


def test_a_result_s3_refuses_to_give_is_a_json_502(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    moto = pytest.importorskip("moto")
    import boto3
    from botocore.exceptions import ClientError

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    document = {"video": {"name": "a.mp4"}, "frames": []}
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="videos")
        s3.put_object(Bucket="videos", Key="results/a.json", Body=json.dumps(document).encode())
        catalog = ResultsCatalog(["s3://videos/results/"], s3=s3, rescan_s=3600)
        client = TestClient(create_app(catalog=catalog), raise_server_exceptions=False)
        assert [r["id"] for r in client.get("/api/results").json()["results"]] == ["a"]

        def denied(**kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

        monkeypatch.setattr(s3, "get_object", denied)
        expected = {"error": "result 'a' cannot be read now (AccessDenied); try again later"}
        with caplog.at_level(logging.WARNING, logger="crowdcount.web.app"):
            for route in ("/api/results/a", "/download/a.json", "/download/a.csv"):
                response = client.get(route)
                assert (response.status_code, response.json()) == (502, expected), route
    assert [r.getMessage() for r in caplog.records if r.name == "crowdcount.web.app"] == [
        "result a (s3://videos/results/a.json) cannot be read: AccessDenied"
    ] * 3
