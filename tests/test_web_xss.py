"""A result file is data, never markup: text from a result file (a folder or S3 prefix others can write to) that
reaches the dashboard's page is shown as text, in the list of videos and on a video's page. Debian's chromium,
driven by Playwright, on a real ``crowdcount dashboard`` (skipped, with the reason, where either is absent)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")

from webserve import free_port, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: markup that runs a script when it is parsed as HTML
EVIL = '<img class="evil" src="x" onerror="window.pwned = (window.pwned || 0) + 1">'


def evil_document(max_count: Any) -> dict[str, Any]:
    frames = [{"frame_index": 1, "frame_timestamp": 0.0, "Human": {"scores": [0.9], "count": 1}}]
    return {
        "schema_version": 1,
        "fps": 2.0,
        "video": {"name": "v.mp4", "frame_count": 1, "frames_decoded": 1, "duration_s": 0.5},
        "detectors": [{"name": "human", "category": "Human"}],
        "summary": {
            "Human": {"max_count": max_count, "mean_count": EVIL, "peak_frame_index": 1, "peak_timestamp": 0.0}
        },
        "frames": frames,
        "counting": {
            "lines": [
                {
                    "name": "door",
                    "in": 1,
                    "out": 0,
                    "crossings": [{"time_s": EVIL, "direction": EVIL, "track_id": EVIL}],
                }
            ],
            "zones": [{"name": "z", "visitors": EVIL, "max_occupancy": EVIL, "mean_occupancy": EVIL}],
        },
        "tracking": {
            "unique_people": EVIL,
            "people": [{"track_id": EVIL, "first_s": EVIL, "last_s": 1, "present_s": 1}],
        },
    }


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/test.sh does it as root)")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    results = tmp_path / "results"
    results.mkdir()
    (results / "listed.json").write_text(json.dumps(evil_document(EVIL)))
    (results / "shown.json").write_text(json.dumps(evil_document(1)))
    port = free_port()
    with serving("dashboard", str(results), "--no-jobs", "--web", str(port), port=port,
                 log=tmp_path / "dashboard.log") as base:  # fmt: skip
        yield base


def test_text_of_a_result_file_is_never_markup(dashboard: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(dashboard + "#results")
            page.locator('#results-table tbody tr[data-id="listed"]').wait_for(timeout=20_000)
            assert page.locator("img.evil").count() == 0
            assert EVIL in page.locator('#results-table tbody tr[data-id="listed"]').inner_text()

            page.goto(dashboard + "#result/shown")
            page.locator("#result-heading", has_text="v.mp4").wait_for(timeout=20_000)
            page.locator("#result-people tbody tr").first.wait_for(state="attached", timeout=20_000)
            assert page.locator("img.evil").count() == 0
            assert page.locator("#result-lines tbody").inner_text().count(EVIL) == 3
            assert page.locator("#result-zones tbody").inner_text().count(EVIL) == 3
            assert page.locator("#result-people tbody").inner_text().count(EVIL) == 2
            page.wait_for_timeout(500)  # an onerror fires once the image fails to load
            assert page.evaluate("window.pwned") is None
        finally:
            browser.close()
