"""A live camera that never gave a frame, as a person sees it in Debian's chromium: the black view says why, and
the counts are "–", not 0 people (nothing was analysed). A real ``crowdcount watch --web`` of an RTSP address
nothing answers on; skipped, with the reason, where chromium or Playwright is absent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from webserve import free_port, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_a_camera_without_a_picture_says_so(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/test.sh does it as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    pytest.importorskip("starlette", reason="the web extra is not installed (pip install 'crowdcount[web]')")
    port, dead = free_port(), free_port()  # nothing listens on the second
    with serving("watch", f"gate=rtsp://127.0.0.1:{dead}/live", "-d", "human", "--web", str(port), "--duration", "90s",
                 "-o", os.devnull, port=port, log=tmp_path / "watch.log"):  # fmt: skip
        base = f"http://127.0.0.1:{port}/"
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                page.goto(base)
                note = page.locator("#camera-gate .no-picture")
                note.wait_for(state="visible", timeout=30_000)
                assert note.inner_text().startswith("No picture yet: ")
                page.wait_for_function(
                    "document.querySelector('#camera-gate .badge').textContent.includes('reconnecting')",
                    timeout=30_000,
                )
                assert "reconnecting" in note.inner_text()
                assert page.locator("#camera-gate .count").inner_text() == "–"
                assert page.locator("#camera-gate .max").inner_text() == "–"
                page.screenshot(path=str(Path(os.environ.get("WEB_SCREENSHOTS") or tmp_path) / "live-no-picture.png"))
            finally:
                browser.close()
