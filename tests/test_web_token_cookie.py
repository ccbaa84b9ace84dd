"""The token's cookie carries any token: one with ';', spaces, commas or non-ASCII letters opens the page once
(``/?token=...``) and then every request the page makes."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx for its test client: either works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from crowdcount.web.app import create_app


@pytest.mark.parametrize(
    ("token", "cookie"),
    [
        ("s3cret", "s3cret"),
        ("a;b", "a%3Bb"),
        ("two words, one=sign", "two%20words%2C%20one%3Dsign"),
        ("ünï", "%C3%BCn%C3%AF"),
    ],
)
def test_the_page_opened_with_its_token_makes_its_requests_with_the_cookie(token: str, cookie: str) -> None:
    client = TestClient(create_app(token=token))
    page = client.get("/", params={"token": token})
    assert page.status_code == 200
    assert page.headers["set-cookie"] == f"crowdcount_token={cookie}; HttpOnly; SameSite=Strict; Path=/"
    assert client.get("/api/info").status_code == 200  # the cookie alone
    client.cookies.clear()
    client.cookies.set("crowdcount_token", "a")
    assert client.get("/api/info").status_code == 401
