"""The finished-video page says what it shows: the chart's legend names the count's smoothing, the peak is the
summary's (with its time), sections without data say why, an unknown video says so instead of an empty page,
and the live view's image keeps the camera's shape. The API through Starlette's TestClient; the page in Debian's
chromium (skipped, with the reason, where chromium or Playwright is absent) on a real ``crowdcount dashboard``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

from starlette.testclient import TestClient
from webserve import REPO, free_port, serving

from crowdcount.web import ResultsCatalog
from crowdcount.web.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STATIC = REPO / "crowdcount" / "web" / "static"


def result_document(name: str, tracked: bool = True) -> dict[str, Any]:
    counts = [1, 3, 3, 5, 2]
    frames = [
        {"frame_index": i + 1, "frame_timestamp": i * 500.0, "Human": {"scores": [0.9] * n, "count": n}}
        for i, n in enumerate(counts)
    ]
    document: dict[str, Any] = {
        "schema_version": 1,
        "fps": 2.0,
        "video": {"name": name, "width": 64, "height": 48, "frame_count": 5, "frames_decoded": 5},
        "count_smoothing": {"seconds": 1.0, "frames": 3},
        "detectors": [{"name": "human", "category": "Human"}],
        "summary": {"Human": {"max_count": 5, "mean_count": 2.8, "peak_frame_index": 4, "peak_timestamp": 1500.0}},
        "frames": frames,
    }
    if tracked:
        document["tracking"] = {
            "unique_people": 2,
            "people": [{"track_id": 1, "first_s": 0.0, "last_s": 2.0, "present_s": 2.0}],
            "per_frame": {"occupancy": [1, 2, 3, 4, 2]},
        }
    return document


@pytest.fixture
def results(tmp_path: Path) -> Path:
    (tmp_path / "door.json").write_text(json.dumps(result_document("door.mp4")))
    (tmp_path / "plain.json").write_text(json.dumps(result_document("plain.mp4", tracked=False)))
    return tmp_path


def test_the_series_carry_the_legend_and_the_peak(results: Path) -> None:
    client = TestClient(create_app(catalog=ResultsCatalog([str(results)])))
    series = client.get("/api/results/door").json()["series"]
    assert series["labels"] == {"Human": "Human (1 s running median)"}
    assert series["peaks"] == {"Human": {"count": 5, "t": 1.5}}
    assert series["counts"]["Human"] == [1, 3, 3, 5, 2]
    assert client.get("/api/results/nope").status_code == 404


def test_the_page_asks_for_no_missing_icon_and_has_room_for_empty_states() -> None:
    page = (STATIC / "index.html").read_text()
    assert '<link rel="icon" href="data:,">' in page  # no /favicon.ico 404 in every browser's console
    assert 'id="result-missing"' in page
    assert page.count('<p class="note" hidden></p>') == 3  # lines, zones, people: why they are empty


@pytest.fixture
def dashboard(results: Path, tmp_path: Path) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/test.sh does it as root)")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    port = free_port()
    with serving("dashboard", str(results), "--no-jobs", "--web", str(port), port=port,
                 log=tmp_path / "dashboard.log") as base:  # fmt: skip
        yield base


def test_result_pages_in_a_browser(dashboard: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("WEB_SCREENSHOTS") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(dashboard + "#result/door")
            page.locator("#result-plot .u-legend").wait_for(timeout=20_000)
            stats = page.locator("#result-summary").inner_text()
            assert "Max count (Human)\n5 at 1.5 s" in stats
            legend = page.locator("#result-plot .u-legend").inner_text()
            assert "Human (1 s running median)" in legend and "people tracked (per frame)" in legend
            assert page.locator("#result-lines").is_hidden()
            assert "No counting lines in this analysis" in page.locator("#view-result").inner_text()
            assert page.locator("#result-people").is_visible()
            page.screenshot(path=str(shots / "result-door.png"), full_page=True)

            page.goto(dashboard + "#result/plain")  # the same page, another hash: wait for the new result's heading
            page.locator("#result-heading", has_text="plain.mp4").wait_for(timeout=20_000)
            page.locator("#result-plot .u-legend").wait_for(timeout=20_000)
            assert "People were not tracked in this analysis." in page.locator("#view-result").inner_text()

            page.goto(dashboard + "#result/nope")
            page.get_by_text("Video not found").wait_for(timeout=20_000)
            assert "No finished video with the id “nope” here" in page.locator("#result-missing").inner_text()
            assert page.locator("#result-summary").is_hidden() and page.locator(".downloads").is_hidden()
            page.screenshot(path=str(shots / "result-missing.png"), full_page=True)
        finally:
            browser.close()


def test_a_result_written_later_appears_without_reloading(dashboard: str, results: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            page.goto(dashboard)
            page.locator("#results-table tbody tr").first.wait_for(timeout=20_000)
            assert page.locator("#results-table tbody tr").count() == 2
            (results / "later.json").write_text(json.dumps(result_document("later.mp4")))
            page.locator('#results-table tbody tr[data-id="later"]').wait_for(timeout=30_000)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        finally:
            browser.close()
