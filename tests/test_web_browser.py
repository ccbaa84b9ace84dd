"""The dashboard as a person uses it: Debian's chromium, driven by Playwright, on a real ``crowdcount watch --web``
of the sample clip (the real detector, tracking, a line people cross) and a real ``crowdcount dashboard`` of a real
result file. Screenshots of each view land in ``$WEB_SCREENSHOTS`` (default: the test's temporary folder).

Skipped, with the reason, where chromium or Playwright is not installed (``scripts/test.sh`` installs chromium
as it installs redis-server).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webserve import REPO, crowdcount_process, free_port, get_json, stop, wait_http

from conftest import SAMPLE_CLIP

pytestmark = pytest.mark.real_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: a vertical line through the middle of the clip: people walk across it (the clip's result: 1 in, 2 out)
LINE = "door=0.5,0,0.5,1"
ZONE = "left=0,0,0.5,0,0.5,1,0,1"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("WEB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/test.sh does it as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def wait_js(page: Any, expression: str, timeout: float) -> None:
    """Wait until ``expression`` is true in the page (``timeout`` in ms). Polled from here with ``page.evaluate``:
    Playwright's own ``wait_for_function`` compiles the expression inside the page, which the dashboard's
    Content-Security-Policy (no eval) forbids, as it should."""
    deadline = time.monotonic() + timeout / 1000.0
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout / 1000.0:g} s: {expression}")
        page.wait_for_timeout(100)


def csp_violations(page: Any) -> list[str]:
    """The page's console messages about its Content-Security-Policy (filled as the page runs)."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


def phone(browser: Any, url: str, path: Path, selector: str) -> None:
    """A screenshot of ``url`` on a phone-sized screen; nothing may stick out sideways."""
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page.goto(url)
    page.locator(selector).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(path), full_page=True)
    page.close()


def _text(page: Any, selector: str) -> str:
    return page.locator(selector).first.inner_text().strip()


def test_live_view_of_the_sample_clip(browser: Any, shots: Path, tmp_path: Path) -> None:
    """Page loads, the live view streams, a line crossing shows, a zone alert shows, the chart grows, and the
    count, maximum and crossings on the page equal /api/status. The clip plays looped in real time: on a busy
    machine the watcher drops frames (live mode), and a crossing may need a second pass."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    log = tmp_path / "watch.log"
    process = crowdcount_process(
        "watch", f"cam={SAMPLE_CLIP}", "--realtime", "--loop", "-d", "human", "--line", LINE, "--zone", ZONE,
        "--max-occupancy", "left=0", "--web", f"127.0.0.1:{port}", "--no-table", "-o", str(tmp_path / "r.jsonl"),
        log=log,
    )  # fmt: skip
    try:
        wait_http(base + "api/status", process, log)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        violations = csp_violations(page)
        page.goto(base)
        card = page.locator("#camera-cam")
        card.wait_for(timeout=30_000)
        wait_js(page, "document.querySelector('#camera-cam .badge').textContent.includes('streaming')",
                               timeout=60_000)  # fmt: skip
        # the MJPEG view delivers frames (encoded because this page watches)
        wait_js(page, "document.querySelector('#camera-cam img.stream').naturalWidth > 0", timeout=20_000)
        points = int(card.locator(".chart").get_attribute("data-points") or 0)
        # a person crosses the line during the clip
        wait_js(
            page,
            "(() => { const r = document.querySelector('#camera-cam tr[data-line=\"door\"]');"
            " return r && (+r.querySelector('.in').textContent + +r.querySelector('.out').textContent) >= 1; })()",
            timeout=150_000,
        )
        # more than 0 people in the zone: an alert on the page (words, not colour), counted in /metrics
        wait_js(
            page,
            "[...document.querySelectorAll('#alert-list li')].some(li => li.textContent.includes('zone left of cam'))",
            timeout=150_000,
        )
        assert page.locator("#alert-list li").first.inner_text().startswith("⚠ Alert:")
        with urllib.request.urlopen(base + "metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'crowdcount_web_alerts_total{kind="zone_over_capacity",source="cam"}' in metrics
        page.screenshot(path=str(shots / "live-desktop.png"), full_page=True)
        card.screenshot(path=str(shots / "live-camera.png"))
        phone(browser, base, shots / "live-phone.png", "#camera-cam img.stream")
        # the chart grows: one point a second
        wait_js(page, f"+document.querySelector('#camera-cam .chart').dataset.points > {points}", timeout=20_000)
        # keyboard: the video toggle is reachable with Tab and works with Enter
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('toggle-video')"):
                break
        assert page.evaluate("document.activeElement.classList.contains('toggle-video')")
        page.keyboard.press("Enter")
        assert card.locator(".toggle-video").get_attribute("aria-pressed") == "false"
        assert card.locator("img.stream").is_hidden()  # not a black box left in its place
        # the video hidden, nobody watches: the server stops drawing and encoding this camera
        deadline = time.monotonic() + 15
        while get_json(base + "api/status")["sources"][0]["viewers"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get_json(base + "api/status")["sources"][0]["viewers"] == 0
        page.keyboard.press("Enter")
        wait_js(page, "document.querySelector('#camera-cam img.stream').naturalWidth > 0", timeout=20_000)
        assert get_json(base + "api/status")["sources"][0]["viewers"] == 1
        # what the page shows is /api/status: count, maximum and crossings together, within a few updates
        row = card.locator('tr[data-line="door"]')
        seen = []
        for _ in range(40):
            status = get_json(base + "api/status")["sources"][0]
            shown = page.evaluate(
                "(() => { const c = document.querySelector('#camera-cam');"
                " const r = c.querySelector('tr[data-line=\"door\"]');"
                " return [+c.querySelector('.count').textContent, +c.querySelector('.max').textContent,"
                " +r.querySelector('.in').textContent, +r.querySelector('.out').textContent]; })()"
            )
            expected = [
                status["count"],
                status["max_count"],
                status["lines"]["door"]["in"],
                status["lines"]["door"]["out"],
            ]
            seen.append((shown, expected))
            if shown == expected:
                break
            time.sleep(0.3)
        assert seen[-1][0] == seen[-1][1], seen
        assert status["status"] == "streaming" and status["lines"]["door"]["in"] + status["lines"]["door"]["out"] >= 1
        assert _text(page, "#camera-cam .badge") == "● streaming"  # a word and a symbol, not a colour alone
        assert row.count() == 1
        page.screenshot(path=str(shots / "live-later.png"), full_page=True)
        assert violations == []  # the page does all of this within its Content-Security-Policy
        page.close()
    finally:
        stop(process)
    assert process.returncode == 0, log.read_text()


@pytest.fixture(scope="module")
def result_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real result file of the sample clip (``crowdcount analyze`` with the line and the zone)."""
    folder = tmp_path_factory.mktemp("results")
    done = subprocess.run(
        [sys.executable, "-m", "crowdcount.cli.main", "analyze", str(SAMPLE_CLIP), "-d", "human", "--line", LINE,
         "--zone", ZONE, "-o", str(folder)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


def test_results_table_and_plot(browser: Any, shots: Path, result_folder: Path, tmp_path: Path) -> None:
    """The table lists the finished video; its page shows the plot, crossings, zones, people and downloads."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    log = tmp_path / "dash.log"
    process = crowdcount_process("dashboard", str(result_folder), "--no-jobs", "--web", f"127.0.0.1:{port}", log=log)
    try:
        wait_http(base + "api/results", process, log)
        document = json.loads((result_folder / "vtest-15s.json").read_text())
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        violations = csp_violations(page)
        page.goto(base)
        row = page.locator('#results-table tr[data-id="vtest-15s"]')
        row.wait_for(timeout=20_000)
        cells = row.locator("td").all_inner_texts()
        assert row.locator("th").inner_text() == "vtest-15s.mp4"
        assert cells[1] == str(document["summary"]["Human"]["max_count"])
        assert cells[3] == str(document["tracking"]["unique_people"])
        assert cells[5] == "done"
        page.screenshot(path=str(shots / "results-table.png"), full_page=True)
        row.locator("a").focus()
        page.keyboard.press("Enter")  # keyboard: open the video
        wait_js(page, "+document.querySelector('#result-plot').dataset.points > 0", timeout=20_000)
        canvas = page.locator("#result-plot canvas").first
        box = canvas.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
        assert page.locator("#result-lines tbody tr").count() == 1
        assert page.locator("#result-people tbody tr").count() == document["tracking"]["unique_people"]
        href = page.locator("#dl-csv").get_attribute("href")
        with urllib.request.urlopen(base + href, timeout=10) as response:
            assert response.read().decode().splitlines()[0].startswith("frame_index,timestamp_ms,Human")
        page.screenshot(path=str(shots / "result-video.png"), full_page=True)
        assert violations == []  # the page does all of this within its Content-Security-Policy
        page.close()
        phone(browser, base + "#result/vtest-15s", shots / "result-video-phone.png", "#result-plot canvas")
    finally:
        stop(process)
