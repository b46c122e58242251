"""The before/after page in a real browser: Debian's chromium driven by Playwright, against a live
service in test mode. A screenshot is kept in tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.live_server import LiveServer, live_server

KEY = "page-test-key"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (needs root); never Playwright's own
    browser download."""
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0:
            pytest.fail(f"{CHROMIUM} is missing and the tests do not run as root: `sudo apt-get install -y chromium`")
        install = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True)
        if install.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, check=False)
            install = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True)
        if install.returncode != 0 or not Path(CHROMIUM).exists():
            pytest.fail(f"apt-get install -y chromium failed:\n{install.stdout[-2000:]}\n{install.stderr[-2000:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("page-data"), KEY, "--mode", "test") as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory: pytest.TempPathFactory, chelsea: np.ndarray) -> Path:
    """scikit-image's 451×300 cat photo as a JPEG file."""
    path = tmp_path_factory.mktemp("photos") / "chelsea.jpg"
    Image.fromarray(chelsea).save(path, quality=90)
    return path


def test_page_loads_without_a_key(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = httpx.get(f"{server.url}/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert httpx.get(f"{server.url}/static/..%2Fapp.py").status_code == 404
    assert httpx.get(f"{server.url}/static/page.py").status_code == 404


def test_page_enhances_a_photo_and_compares_it(server: LiveServer, page: Page, photo_file: Path) -> None:
    page.goto(server.url)
    expect(page.locator("#service-status")).to_contain_text("TEST MODE")
    page.fill("#api-key", KEY)
    page.click("#save-key")
    assert page.evaluate("localStorage.getItem('phota-enhance.api-key')") == KEY

    page.set_input_files("#file-input", str(photo_file))
    expect(page.locator("#file-name")).to_contain_text("chelsea.jpg")
    page.select_option("#variations", "2")
    page.fill("#prompt", "sharper")
    page.click("#enhance-button")
    expect(page.locator("#request-status")).to_contain_text("Done in", timeout=120_000)

    # Both variations side by side, decoded, downloadable under the documented names.
    figures = page.locator("#variations-grid figure")
    expect(figures).to_have_count(2)
    downloads = page.locator("#variations-grid a.download")
    assert downloads.nth(0).get_attribute("download") == "chelsea.enhanced.1-inferred.jpg"
    assert downloads.nth(1).get_attribute("download") == "chelsea.enhanced.2-natural.jpg"
    assert (downloads.nth(0).get_attribute("href") or "").startswith("blob:")
    widths = page.eval_on_selector_all("#variations-grid img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert all(w and w > 0 for w in widths)

    # The comparison: before and after at the same size on screen, then moved by the slider.
    page.wait_for_function("(i => i.complete && i.naturalWidth > 0)(document.getElementById('after-img'))")
    boxes = [page.locator(sel).bounding_box() for sel in ("#before-img", "#after-img")]
    assert boxes[0] is not None and boxes[1] is not None
    assert boxes[0] == pytest.approx(boxes[1], abs=0.5)
    compare = page.locator("#compare").bounding_box()
    assert compare is not None
    divider = page.locator("#divider").bounding_box()
    assert divider is not None
    start_x, mid_y = divider["x"] + divider["width"] / 2, compare["y"] + compare["height"] / 2
    page.mouse.move(start_x, mid_y)
    page.mouse.down()
    page.mouse.move(compare["x"] + compare["width"] * 0.3, mid_y, steps=5)
    page.mouse.up()
    assert float(page.input_value("#slider")) == pytest.approx(30, abs=1.5)
    assert "inset(0px 0px 0px 30" in page.eval_on_selector("#after-layer", "e => getComputedStyle(e).clipPath")

    # The tables read from X-Enhance-Parameters.
    summary = page.locator("#summary-table").inner_text()
    assert "mode\ttest" in summary and "network\tnone" in summary and "2048 × 1362" in summary
    rows = page.locator("#parameters-table tbody tr")
    expect(rows).to_have_count(2)
    assert rows.nth(0).inner_text().startswith("inferred") and rows.nth(1).inner_text().startswith("natural")
    timings = page.locator("#timings-table").inner_text()
    assert "analysis" in timings and "total" in timings
    assert "sharper" in page.locator("#summary-table").inner_text()

    # Zooming past the scaled preview swaps in the full-resolution images, at the same zoom on both sides.
    preview_src = page.get_attribute("#after-img", "src")
    page.click("button[data-zoom='2']")
    page.wait_for_function("document.getElementById('after-img').naturalWidth === 2048")
    assert page.get_attribute("#after-img", "src") != preview_src
    boxes = [page.locator(sel).bounding_box() for sel in ("#before-img", "#after-img")]
    assert boxes[0] == pytest.approx(boxes[1], abs=0.5) and boxes[1] is not None and boxes[1]["width"] > 4000
    page.click("button[data-zoom='fit']")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)


def test_page_reports_a_wrong_key(server: LiveServer, page: Page, photo_file: Path) -> None:
    page.goto(server.url)
    page.fill("#api-key", "not-the-key")
    page.set_input_files("#file-input", str(photo_file))
    page.click("#enhance-button")
    expect(page.locator("#request-status")).to_contain_text("401 UNAUTHORIZED", timeout=30_000)
    assert page.locator("#result-panel").is_hidden()
