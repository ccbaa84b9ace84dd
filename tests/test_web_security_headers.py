"""Every dashboard response carries a Content-Security-Policy (the page's own scripts, styles, images and streams
only: a second line behind escaping), nosniff and no-referrer (the page's address may carry its token)."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

from starlette.testclient import TestClient

from crowdcount.web.app import create_app

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_every_response_says_what_the_page_may_load(token: str | None) -> None:
    client = TestClient(create_app(token=token))
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    for path in ("/", "/static/app.js", "/api/results", "/no/such/page"):
        response = client.get(path, headers=auth)
        assert response.status_code in (200, 404), path
        assert response.headers["content-security-policy"] == POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
    if token:  # a refused request too
        refused = client.get("/")
        assert refused.status_code == 401 and refused.headers["content-security-policy"] == POLICY
