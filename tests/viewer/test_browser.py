"""The viewer in a real headless Chromium (the system's /usr/bin/chromium, driven by Playwright).

Outside CI these tests skip, saying why, when Chromium or Playwright is missing; with the
environment variable CI set they fail instead.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.viewer.conftest import Served
from wsikit import open_slide

CHROMIUM = os.environ.get("WSIKIT_CHROMIUM", "/usr/bin/chromium")
# OpenSeadragon loads tiles asynchronously; a page that shows nothing in this long is broken.
WAIT_MS = 60_000


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


class Page:
    """A browser page that records JavaScript errors and the tile URLs it asked for."""

    def __init__(self, browser: Any, width: int = 1200, height: int = 800) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.tiles: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfinished", lambda r: self.tiles.append(r.url) if "_files/" in r.url else None)
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))

    def open_slide(self, served: Served, slide_id: str) -> None:
        self.page.goto(f"{served.url}/slides/{slide_id}")
        self.wait_loaded()

    def wait_loaded(self) -> None:
        self.page.wait_for_function("window.wsikit && window.wsikit.firstView !== null && "
                                    "window.wsikit.slideItem && window.wsikit.slideItem.getFullyLoaded()",
                                    timeout=WAIT_MS)

    def close(self) -> None:
        self.page.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Page]:
    p = Page(browser)
    yield p
    p.close()


def grey_correlation(a: np.ndarray, b: np.ndarray, size: int = 48) -> float:
    """Correlation of two RGB pictures, each area-averaged to size x size grey."""
    from wsikit.pixels import resample_area

    def small(x: np.ndarray) -> np.ndarray:
        grey = x[:, :, :3].astype(np.float64).mean(axis=2)
        return resample_area(grey, (size, size)).ravel()

    return float(np.corrcoef(small(a), small(b))[0, 1])


def rendered_slide(page: Page) -> np.ndarray:
    """The screenshot of the slide's area of the viewer (overlays off), as RGB."""
    import io

    from PIL import Image

    box = page.page.evaluate("""() => {
        const item = window.wsikit.slideItem, size = item.getContentSize();
        const a = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
        const b = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(size.x, size.y));
        const r = document.getElementById('osd').getBoundingClientRect();
        return {x: r.left + a.x, y: r.top + a.y, width: b.x - a.x, height: b.y - a.y};
    }""")
    shot = page.page.screenshot(clip=box)
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))


# -- the index -----------------------------------------------------------------------------
def test_index_lists_the_slides(synthetic: Served, page: Page) -> None:
    page.page.goto(synthetic.url + "/")
    page.page.wait_for_selector(".slide-row")
    rows = page.page.locator(".slide-row")
    assert rows.count() == 3
    names = page.page.locator(".slide-link").all_inner_texts()
    assert names == ["fluo.ome.tif", "he/sample.svs", "zstack"]
    page.page.wait_for_function("[...document.querySelectorAll('#slides img')].every(i => i.complete && "
                                "i.naturalWidth > 0)", timeout=WAIT_MS)
    assert "3 slides" in page.page.inner_text("#status")
    page.page.locator(".slide-link", has_text="sample.svs").click()
    page.wait_loaded()
    assert page.page.inner_text("#name") == "he/sample.svs"
    assert page.errors == []


# -- the viewer page -----------------------------------------------------------------------
def test_viewer_renders_zooms_to_full_resolution_and_matches_the_thumbnail(synthetic: Served, synthetic_slides: Path,
                                                                           page: Page) -> None:
    slide_id = synthetic.slide_id("sample")
    page.open_slide(synthetic, slide_id)
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        thumb = slide.get_thumbnail((512, 512))
    shown = rendered_slide(page)
    assert grey_correlation(shown, thumb) > 0.9
    assert page.page.inner_text("#scalebar-label").endswith(("\u00b5m", "mm"))
    # Zoom to twice the full resolution: every slide pixel 2 x 2 screen pixels.
    page.page.evaluate("""() => { const v = window.wsikit.viewer;
        v.viewport.zoomTo(v.wsikit_zoom = window.wsikit.slideItem.imageToViewportZoom(2.0), null, true); }""")
    page.page.wait_for_timeout(300)
    page.wait_loaded()
    assert any("_files/11/" in url for url in page.tiles), page.tiles[:20]  # 11: the full-resolution DZI level
    # A 100 x 100 slide-pixel box at the centre of the view, as shown, against extract_region.
    box = page.page.evaluate("""() => { const item = window.wsikit.slideItem, v = window.wsikit.viewer;
        const c = item.viewportToImageCoordinates(v.viewport.getCenter(true));
        const i = Math.round(c.y) - 50, j = Math.round(c.x) - 50;
        const a = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(j, i));
        const r = document.getElementById('osd').getBoundingClientRect();
        return {i: i, j: j, x: r.left + a.x, y: r.top + a.y}; }""")
    import io

    from PIL import Image

    shot = page.page.screenshot(clip={"x": box["x"], "y": box["y"], "width": 200, "height": 200})
    shown = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(np.float64)
    shown = shown.reshape(100, 2, 100, 2, 3).mean(axis=(1, 3))
    with open_slide(str(synthetic_slides / "he" / "sample.svs")) as slide:
        expected = slide.extract_region((box["i"], box["j"]), (100, 100)).astype(np.float64)
    assert float(np.corrcoef(shown.ravel(), expected.ravel())[0, 1]) > 0.95
    assert np.abs(shown - expected).mean() < 8
    assert page.errors == []


def test_overlays_are_off_then_switch_on_and_off(synthetic: Served, page: Page) -> None:
    page.open_slide(synthetic, synthetic.slide_id("sample"))
    state = page.page.evaluate("() => ({tissue: document.getElementById('tissue-toggle').checked, "
                               "plan: document.getElementById('plan-toggle').checked, "
                               "items: window.wsikit.viewer.world.getItemCount()})")
    assert state == {"tissue": False, "plan": False, "items": 1}
    before = rendered_slide(page)
    page.page.check("#tissue-toggle")
    page.page.wait_for_function("window.wsikit.tissueItem && window.wsikit.tissueItem.getFullyLoaded()",
                                timeout=WAIT_MS)
    page.page.wait_for_timeout(300)
    tinted = rendered_slide(page)
    # Tissue turns greener where the mask is; glass stays as it was.
    assert tinted[:, :, 1].astype(int).mean() > before[:, :, 1].astype(int).mean() + 2
    page.page.uncheck("#tissue-toggle")
    page.page.wait_for_function("window.wsikit.viewer.world.getItemCount() === 1")
    # The plan overlay: the plan wsikit tile would cut, drawn as a grid.
    page.page.fill("#plan-form input[name=shape]", "128")
    page.page.click("#plan-form button")
    page.page.wait_for_function("window.wsikit.plan !== null", timeout=WAIT_MS)
    plan = page.page.evaluate("window.wsikit.plan")
    assert plan["tiles"] == 8 * 12
    assert page.page.evaluate("window.wsikit.planDrawn") == plan["tiles"]
    assert "96 tiles of 128\u00d7128" in page.page.inner_text("#plan-info")
    gridded = rendered_slide(page)
    assert np.abs(gridded.astype(int) - before.astype(int)).mean() > 1
    page.page.uncheck("#plan-toggle")
    page.page.wait_for_timeout(200)
    cleared = rendered_slide(page)
    assert np.abs(cleared.astype(int) - before.astype(int)).mean() < 1
    assert page.errors == []


def test_channel_picker_composites_on_the_server(synthetic: Served, page: Page) -> None:
    page.open_slide(synthetic, synthetic.slide_id("fluo"))
    assert page.page.locator("#channels .channel").count() == 3
    # Show only DAPI, in blue, over a range where its bright block saturates.
    page.page.uncheck("#channels .channel[data-index='1'] .shown")
    page.page.uncheck("#channels .channel[data-index='2'] .shown")
    page.page.fill("#channels .channel[data-index='0'] .colour", "#0000ff")
    page.page.fill("#channels .channel[data-index='0'] .low", "20000")
    page.page.fill("#channels .channel[data-index='0'] .high", "30000")
    page.tiles.clear()
    page.page.click("#channels-apply")
    page.page.wait_for_function("window.wsikit.slideItem && window.wsikit.slideItem.source.queryParams && "
                                "String(window.wsikit.slideItem.source.queryParams).includes('channels')",
                                timeout=WAIT_MS)
    page.wait_loaded()
    page.page.wait_for_timeout(300)
    assert any("channels=0%3A0000ff%3A20000%3A30000" in url for url in page.tiles), page.tiles[:5]
    shown = rendered_slide(page).astype(int)
    h, w = shown.shape[:2]
    block = shown[int(h * 0.4): int(h * 0.6), int(w * 0.35): int(w * 0.65)]
    assert block[:, :, 2].mean() > 200 and block[:, :, :2].mean() < 30
    assert shown[: int(h * 0.2), :, :].mean() < 10  # outside the block DAPI is below the range: black
    assert page.errors == []


def test_dicom_focal_plane_selector(synthetic: Served, synthetic_slides: Path, page: Page) -> None:
    page.open_slide(synthetic, synthetic.slide_id("zstack"))
    assert not page.page.locator("#dicom-panel").is_hidden()
    before = rendered_slide(page)
    page.tiles.clear()
    page.page.select_option("#focal-plane", "1")
    page.page.wait_for_function("String(window.wsikit.slideItem.source.queryParams).includes('focal_plane=1')",
                                timeout=WAIT_MS)
    page.wait_loaded()
    page.page.wait_for_timeout(300)
    after = rendered_slide(page)
    assert any("focal_plane=1" in url for url in page.tiles)
    with open_slide(str(synthetic_slides / "zstack")) as slide:
        planes = [slide.extract_region((0, 0), slide.level_shapes[1], level=1, focal_plane=k) for k in (0, 1)]
    assert grey_correlation(before, planes[0]) > 0.9
    assert grey_correlation(after, planes[1]) > 0.9
    assert grey_correlation(after, planes[0]) < grey_correlation(after, planes[1]) - 0.2
    assert page.errors == []


def test_results_overlay_outlines_tiles_and_shows_a_row_on_click(tmp_path: Path, synthetic_slides: Path,
                                                                 browser: Any) -> None:
    from tests.viewer.conftest import start
    from wsikit.sinks import TileOptions, tile_slide

    out = tmp_path / "out"
    tile_slide(str(synthetic_slides / "he" / "sample.svs"), out, TileOptions(shape=256, format="jpeg"))
    for served in start(synthetic_slides, results=out):
        page = Page(browser)
        try:
            page.open_slide(served, served.slide_id("sample"))
            assert page.page.is_visible("#results-toggle") and not page.page.is_checked("#results-toggle")
            page.page.check("#results-toggle")
            page.page.wait_for_function("window.wsikit.results !== null && window.wsikit.resultsDrawn > 0",
                                        timeout=WAIT_MS)
            assert page.page.evaluate("window.wsikit.resultsDrawn") == 4 * 6
            # Click inside the tile at level-0 (300, 600): row 1, column 2 of the grid.
            point = page.page.evaluate("""() => { const p = window.wsikit.slideItem.imageToViewerElementCoordinates(
                new OpenSeadragon.Point(600, 300)); const r = document.getElementById('osd').getBoundingClientRect();
                return {x: r.left + p.x, y: r.top + p.y}; }""")
            page.page.mouse.click(point["x"], point["y"])
            page.page.wait_for_selector("#tile-row tr")
            cells = dict(zip(page.page.locator("#tile-row td:first-child").all_inner_texts(),
                             page.page.locator("#tile-row td:last-child").all_inner_texts()))
            assert cells["i"] == "256" and cells["j"] == "512" and cells["file"] == "images/256_512.jpg"
            page.page.wait_for_function("document.getElementById('tile-image').complete && "
                                        "document.getElementById('tile-image').naturalWidth === 256",
                                        timeout=WAIT_MS)
            assert page.errors == []
        finally:
            page.close()


def test_every_real_slide_opens_without_errors(real: Served, browser: Any) -> None:
    slides = real.client.get("/api/slides").json()
    assert slides and all(s["error"] is None for s in slides)
    for s in slides:
        page = Page(browser)
        try:
            page.open_slide(real, s["id"])
            with open_slide(str(real.service.catalog.get(s["id"]).path)) as slide:  # type: ignore[union-attr]
                thumb = slide.get_thumbnail((512, 512))
            assert grey_correlation(rendered_slide(page), thumb) > 0.9, s["name"]
            assert page.errors == [], (s["name"], page.errors)
        finally:
            page.close()
