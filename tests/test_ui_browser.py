"""The web UI in a real headless browser: load, upload, click to focus, result.

Needs Gradio (``refocus[ui]``), Playwright's Python package and a Chromium at
/usr/bin/chromium (never downloaded by Playwright); skips with the reason otherwise.
Any request the page makes to a host other than the local server fails the test
(the UI must work offline).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = os.environ.get("REFOCUS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui_url():
    pytest.importorskip("gradio", reason="gradio not installed (pip install 'refocus[ui]')")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    from refocus.ui.app import launch

    port = _free_port()
    app = launch(port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def test_upload_click_focus_result(ui_url, tmp_path):
    from playwright.sync_api import sync_playwright

    from refocus.pipeline.demo import demo_files

    photo, disp = demo_files()
    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def check(route):
            host = urlparse(route.request.url).hostname
            if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                external.append(route.request.url)
                route.abort()

        page.route("**/*", check)
        page.goto(ui_url, wait_until="load", timeout=90_000)
        page.wait_for_selector("#status", timeout=60_000)

        page.locator("#depth input[type=file]").set_input_files(str(disp))
        page.wait_for_timeout(1500)
        page.locator("#photo input[type=file]").set_input_files(str(photo))
        status = page.locator("#status")
        status.get_by_text("focus auto").wait_for(timeout=180_000)
        assert page.locator("#result img").count() >= 1, "no result image after upload"

        # Click on the hiker (right of centre): the focus must move to a point.
        img = page.locator("#photo img").first
        box = img.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 490 / 640, box["y"] + box["height"] * 413 / 689)
        status.get_by_text("focus point").wait_for(timeout=180_000)
        text = status.inner_text()
        assert "disparity" in text
        fd = float(text.split("disparity ")[1].split(",")[0])
        assert fd > 0.6, f"clicked the near hiker but focused at disparity {fd}"
        assert page.locator("#result img").count() >= 1
        # A click shows the quick draft first; the full preview must replace it.
        status.get_by_text(re.compile(r"focus point.*- preview")).wait_for(timeout=180_000)
        page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)
        if os.environ.get("REFOCUS_UI_SCREENSHOT"):
            shutil.copy(tmp_path / "ui.png", os.environ["REFOCUS_UI_SCREENSHOT"])
        browser.close()
    assert not external, f"the page tried to reach the internet: {external[:3]}"


def _open(p, ui_url):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(ui_url, wait_until="load", timeout=90_000)
    page.wait_for_selector("#status", timeout=60_000)
    return browser, page


def _upload_depth_then_photo(page, photo, depth):
    """The depth map first (as a user who has both), then the photo; returns the status."""
    page.locator("#depth input[type=file]").set_input_files(str(depth))
    page.wait_for_timeout(1500)
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    return page.locator("#status")


def _photo_alone(tmp_path):
    """The demo photo in a folder of its own (no neighbouring depth map)."""
    from refocus.pipeline.demo import demo_files

    photo, disp = demo_files()
    alone = tmp_path / "alone" / photo.name
    alone.parent.mkdir()
    shutil.copy(photo, alone)
    return alone, disp


def _wait_for_render(page, depth_from: str):
    status = page.locator("#status")
    status.get_by_text(re.compile(r"focus auto.*depth from " + re.escape(depth_from))).wait_for(timeout=180_000)
    assert page.locator("#result img").count() >= 1, "no result image after upload"
    assert page.locator("#depth-view img").count() >= 1 and page.locator("#coc-view img").count() >= 1
    assert not page.get_by_text(re.compile(r"^Error$")).count(), "a panel shows Error"


@pytest.mark.parametrize("order", ["photo only", "photo then depth", "depth then photo"])
def test_upload_in_any_order(ui_url, tmp_path, order):
    """A photo alone gets the depth rule's answer (no depth file: the depth-kind radio
    is ignored; here a refusal, the photo being sharp and no network), and a depth map
    may come before or after the photo."""
    from playwright.sync_api import sync_playwright

    photo, disp = _photo_alone(tmp_path)
    with sync_playwright() as p:
        browser, page = _open(p, ui_url)
        if order == "depth then photo":
            page.locator("#depth input[type=file]").set_input_files(str(disp))
            page.wait_for_timeout(1000)
        page.locator("#photo input[type=file]").set_input_files(str(photo))
        if order in ("photo only", "photo then depth"):
            # The demo photo is sharp everywhere and the tests have no depth network:
            # the UI says so (issue 14) instead of rendering depth invented from texture.
            page.get_by_text(re.compile("in focus everywhere")).first.wait_for(timeout=180_000)
            # In the UI's words (its controls), not the CLI's options (trial D, defect 3).
            said = page.locator("#status").inner_text()
            assert 'upload a "Depth or disparity map"' in said and "--depth" not in said, said
        if order == "photo then depth":
            page.locator("#depth input[type=file]").set_input_files(str(disp))
        if order != "photo only":
            _wait_for_render(page, f"file {disp.name}")
        browser.close()


def test_depth_drop_zone_text_is_not_clipped(ui_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page = _open(p, ui_url)
        geometry = page.locator("#depth").evaluate(
            """root => {
                const box = root.querySelector('button.upload-container') || root;
                const label = root.querySelector('[data-testid=block-label]');
                const text = root.querySelector('[data-testid=upload-text]');
                const r = document.createRange();
                r.selectNodeContents(text);
                const rects = Array.from(r.getClientRects()).filter(x => x.width > 0 && x.height > 0);
                const b = box.getBoundingClientRect();
                return {box: [b.top, b.bottom], label_bottom: label ? label.getBoundingClientRect().bottom : b.top,
                        text: [Math.min(...rects.map(x => x.top)), Math.max(...rects.map(x => x.bottom))],
                        words: text.innerText};
            }"""
        )
        browser.close()
    assert "Drop File Here" in geometry["words"]
    top, bottom = geometry["text"]
    assert top >= geometry["label_bottom"] - 1, f"the drop text starts under the label: {geometry}"
    assert geometry["box"][0] - 1 <= top and bottom <= geometry["box"][1] + 1, f"the drop text is clipped: {geometry}"


def test_in_focus_band_slider_rerenders(ui_url, tmp_path):
    """Issue 14, item 5 (UI): the in-focus depth band slider re-renders the preview
    with a band of depth kept sharp (the CoC view's green area grows), and "show
    depth" lays the depth, band hatched, over the result."""
    from playwright.sync_api import sync_playwright

    from refocus.pipeline.demo import demo_files

    photo, disp = demo_files()
    with sync_playwright() as p:
        browser, page = _open(p, ui_url)
        status = _upload_depth_then_photo(page, photo, disp)
        status.get_by_text("focus auto").wait_for(timeout=180_000)
        before = page.locator("#coc-view img").first.get_attribute("src")
        number = page.locator("#band input[type=number]").first
        number.fill("0.3")
        number.press("Enter")
        page.wait_for_function(
            "([sel, old]) => { const i = document.querySelector(sel); return i && i.getAttribute('src') !== old; }",
            arg=["#coc-view img", before], timeout=180_000,
        )
        assert not page.get_by_text(re.compile(r"^Error$")).count(), "a panel shows Error"
        # Trial C, defect 3: a typed value (Enter: no "release") must end with the full
        # preview, not the draft.
        status.get_by_text(re.compile(r"- preview .*sharp from disparity")).wait_for(timeout=60_000)
        # "Show depth": the result shows the depth with the in-focus band hatched.
        after = page.locator("#result img").last.get_attribute("src")
        page.locator("#show-depth input[type=checkbox]").check()
        page.wait_for_function(
            "([sel, old]) => { const i = document.querySelectorAll(sel); return i.length && i[i.length - 1].getAttribute('src') !== old; }",
            arg=["#result img", after], timeout=180_000,
        )
        assert not page.get_by_text(re.compile(r"^Error$")).count(), "a panel shows Error"
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "ui-band.png"), full_page=True)
        if os.environ.get("REFOCUS_UI_SCREENSHOT"):
            shutil.copy(tmp_path / "ui-band.png", os.environ["REFOCUS_UI_SCREENSHOT"])
        browser.close()


@pytest.mark.parametrize("kind", ["text named .jpg", "PNG declaring 60000x60000"])
def test_bad_upload_shows_the_pipelines_line(ui_url, tmp_path, kind):
    """Trial D, defect 1: through the real server, a bad upload gets the CLI's one line
    in the status (not Gradio's "Error" with Pillow's text), and the blur controls that
    do not apply to the disc aperture are disabled (defect 7)."""
    from playwright.sync_api import sync_playwright

    from test_limits import bomb_png

    if kind.startswith("text"):
        bad = tmp_path / "holiday.jpg"
        bad.write_text("this is not a photo\n")
        expected = "cannot read image holiday.jpg"
    else:
        bad = tmp_path / "huge.png"
        bad.write_bytes(bomb_png(60000, 60000, rows=1))
        expected = "huge.png (PNG) declares 60000x60000"
    with sync_playwright() as p:
        browser, page = _open(p, ui_url)
        assert page.locator("#blades input").first.is_disabled() and page.locator("#curvature input").first.is_disabled()
        # ... and look it: Gradio drew them as usable (the UI trial).
        opacity = lambda: float(page.locator("#blades").evaluate("e => getComputedStyle(e).opacity"))  # noqa: E731
        assert opacity() < 0.6
        page.get_by_label("blades", exact=True).check()
        page.wait_for_function("() => !document.querySelector('#blades input[type=range]').disabled")
        assert opacity() == 1.0
        page.locator("#photo input[type=file]").set_input_files(str(bad))
        status = page.locator("#status")
        status.get_by_text(re.compile(re.escape(expected))).wait_for(timeout=60_000)
        said = status.inner_text()
        assert said.startswith("error: ") and "/tmp" not in said and "Decompression" not in said, said
        assert not page.get_by_text(re.compile(r"^Error$")).count(), "a panel shows Error"
        browser.close()


def test_the_status_says_a_photo_is_loading(ui_url, tmp_path, monkeypatch):
    """Regression (UI trial): through a first load of 26 s the status kept the upload
    hint, as if nothing ran. The load is slowed here so that the page can be read."""
    import time

    from playwright.sync_api import sync_playwright

    from refocus.ui import session
    from refocus.ui.app import LOADING

    load = session.load
    monkeypatch.setattr(session, "load", lambda *a, **k: time.sleep(4) or load(*a, **k))
    alone, disp = _photo_alone(tmp_path)
    with sync_playwright() as p:
        browser, page = _open(p, ui_url)
        status = _upload_depth_then_photo(page, alone, disp)
        status.get_by_text(LOADING[:40]).wait_for(timeout=3_000)
        _wait_for_render(page, "file")
        assert LOADING[:40] not in status.inner_text()
        browser.close()
