"""End to end in Chromium against a real `vidsearch serve` on the demo archive: search, play the
range, mark and refine, keep two ranges in a case, export, open the report. Saves screenshots
(``$VIDSEARCH_SCREENSHOTS``, default ``bench-out/screenshots/``)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the web extra: pip install 'vidsearch[web]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")

from webserve import REPO, demo, server  # noqa: E402,F401 - fixtures

CHROMIUM = os.environ.get("VIDSEARCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM, reason="needs Chromium (apt install chromium)")]
SHOTS = Path(os.environ.get("VIDSEARCH_SCREENSHOTS") or REPO / "bench-out" / "screenshots")


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        pg = browser.new_page(viewport={"width": 1400, "height": 950})
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server)
        yield pg
        browser.close()
        assert not errors, errors


def source_time(page) -> float:
    return float(page.eval_on_selector("#video", "v => v.dataset.sourceTime || -1"))


def test_review_loop_in_the_browser(page, server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.fill("#case-name", "harbour")  # marks and kept ranges go to this case
    page.dispatch_event("#case-name", "change")
    page.fill("#q-prompts", "red")
    page.click("#search-btn")
    page.wait_for_selector(".result")
    times = page.locator(".result .times").all_inner_texts()
    videos = page.locator(".result .video").all_inner_texts()
    assert [t.split("\n")[0][:15] for t in times] == ["0:20.0 – 0:35.0", "0:40.0 – 0:52.0"]
    assert "cam-lobby/2026-11-02_0800.mp4" in videos[0] and "cam-lobby/2026-11-02_0900.mp4" in videos[1]
    assert page.locator(".timeline").count() == 2

    # play: starts at the range start (minus padding) and stops at the end (plus padding)
    page.fill("#pad", "0")
    page.click(".result[data-rank='1'] .play")
    page.wait_for_function("() => parseFloat(document.querySelector('#video').dataset.sourceTime) > 20.5", timeout=20000)
    assert 20.0 <= source_time(page) <= 35.0
    assert page.eval_on_selector("#video", "v => !v.error && v.readyState >= 2")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "search.png"))
    # ... and stops at the range end
    page.eval_on_selector("#video", "v => { v.currentTime = 34.4; v.play(); }")
    page.wait_for_function("() => document.querySelector('#video').paused", timeout=10000)
    assert 34.4 <= source_time(page) <= 35.05
    # frame stepping around the peak
    page.click("#to-peak")
    page.wait_for_timeout(300)
    at = page.eval_on_selector("#video", "v => v.currentTime")
    page.click("#step-fwd")
    page.wait_for_timeout(300)
    assert page.eval_on_selector("#video", "v => v.currentTime") == pytest.approx(at + 0.1, abs=0.02)

    # relevance feedback: mark #2 not relevant, #1 relevant, refine
    page.click(".result[data-rank='2'] .mark-irrelevant")
    page.click(".result[data-rank='1'] .mark-relevant")
    page.click("#refine-btn")
    page.wait_for_selector("#changes b")
    assert "Refined" in page.inner_text("#changes")
    assert page.locator(".result").count() >= 1
    assert "0:20.0 – 0:35.0" in page.locator(".result .times").first.inner_text()

    # keep two ranges in a case (the refined #1 and, from a new search, the blue one in the lobby)
    page.click(".result[data-rank='1'] .keep")
    page.fill("#q-prompts", "blue")
    page.click("#search-btn")
    page.wait_for_function("() => document.querySelector('#summary').textContent.includes('blue')")
    page.click(".result[data-rank='1'] .keep")
    page.wait_for_function("() => document.querySelector('#case-count').textContent === '2'")

    page.click("#tabs button[data-tab='case']")
    page.wait_for_selector(".kept")
    assert page.locator(".kept").count() == 2
    page.fill(".kept textarea", "person in red enters the lobby")
    page.dispatch_event(".kept textarea", "change")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "case.png"))

    page.click("#export-btn")
    page.wait_for_selector("#report-link", timeout=60000)
    with page.context.expect_page() as report_page:
        page.click("#report-link")
    report = report_page.value
    report.wait_for_load_state()
    assert re.search(r"evidence|manifest", report.content(), re.I)
    manifest = server.rstrip("/") + page.get_attribute("#report-link", "href").replace("report.html", "manifest.json")
    review = page.context.request.get(manifest).json()["review"]
    assert [k["note"] for k in review["kept"]] == ["person in red enters the lobby", ""]
    assert [m["verdict"] for m in review["marks"]] == ["not relevant", "relevant"]
    report.close()


def test_status_events_classify_views(page):
    page.click("#tabs button[data-tab='status']")
    page.wait_for_selector(".stat")
    assert "4" in page.locator(".stat").first.inner_text()
    page.click("#tabs button[data-tab='events']")
    page.fill("#e-prompt", "red")
    page.click("#events-form button")
    page.wait_for_selector("#events-out table")
    assert "2 event(s)" in page.inner_text("#events-out")
    page.click("#tabs button[data-tab='classify']")
    page.fill("#c-labels", "red, green, blue, gray")
    page.click("#classify-form button")
    page.wait_for_selector("#classify-out .labels div")


def test_transcoded_range_plays_with_sound(page):
    """The MPEG-4 Part 2 + MP2 AVI: transcoded for its range, played from the range start, with sound."""
    page.click("#tabs button[data-tab='search']")
    page.fill("#q-prompts", "purple")
    page.click("#search-btn")
    page.wait_for_function("() => document.querySelector('#summary').textContent.includes('purple')")
    assert page.locator(".result .times").first.inner_text().startswith("0:10.0 – 0:20.0")
    page.fill("#pad", "0")
    page.click(".result[data-rank='1'] .play")
    page.wait_for_function("() => document.querySelector('#video').src.includes('/clip?start=10.000')", timeout=10000)
    page.wait_for_function("() => parseFloat(document.querySelector('#video').dataset.sourceTime) > 11.5", timeout=30000)
    assert page.eval_on_selector("#video", "v => !v.error && v.duration") == pytest.approx(10.0, abs=0.15)
    assert 11.5 <= source_time(page) <= 20.0
    assert page.eval_on_selector("#video", "v => v.webkitAudioDecodedByteCount") > 0  # Chromium decoded its sound
    page.eval_on_selector("#video", "v => v.pause()")
