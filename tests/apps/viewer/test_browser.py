"""The viewer in a real browser (Debian's chromium, headless, through Playwright): open the app on a
2D multi-label run and a 3D BraTS run, open the worst case, toggle a class, move the slice slider,
compare two runs, upload an image; the console stays clean and every request goes to the app.

``make test-browser`` runs these. With ``MEDSEG_VIEWER_SCREENSHOTS=<folder>`` the screenshots of
docs/viewer.md are written there (``make viewer-screenshots`` writes them into docs/img/).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("MEDSEG_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(viewer_runs):
    import uvicorn

    from medseg.apps.viewer import create_app

    app = create_app([viewer_runs["hand_a"], viewer_runs["hand_b"], viewer_runs["brats"]])
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the viewer did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield b
        b.close()


class Page:
    """A page that records console errors, page errors and every request URL."""

    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.page = browser.new_page(viewport={"width": 1280, "height": 860})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def canvas_hash(self, selector: str = "#pane-0") -> str:
        # the canvas as a PNG (lossless, so equal pixels give equal bytes); no getImageData readback
        data = self.page.evaluate("(sel) => document.querySelector(sel).toDataURL('image/png')", selector)
        return hashlib.sha1(data.encode()).hexdigest()

    def renders(self) -> int:
        return int(self.page.get_attribute(".viewer", "data-renders") or 0)

    def shot(self, name: str) -> None:
        folder = os.environ.get("MEDSEG_VIEWER_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / name))

    def check_clean(self) -> None:
        assert self.errors == [], self.errors
        outside = [u for u in self.requests if not (u.startswith(self.base + "/") or u.startswith(("blob:", "data:")))]
        assert outside == [], outside
        self.page.close()


def test_2d_multilabel_run_case_compare_and_upload(browser, server, viewer_runs, tmp_path):
    import pandas as pd

    pg = Page(browser, server)
    page = pg.page
    page.goto(server + "/")
    page.wait_for_selector("#leaderboard tbody tr")
    assert page.locator("#models tbody tr").count() == 3
    pg.shot("viewer_home.png")
    page.click("#models tbody tr >> text=hand_a")
    page.wait_for_selector("#cases tbody tr")
    page.wait_for_selector("#class-bars")
    pg.shot("viewer_cases.png")
    # worst first by default
    per_image = pd.read_csv(viewer_runs["hand_a"] / "per_image.csv", index_col=0)
    worst = str(per_image["dice"].idxmin())
    assert page.get_attribute("#cases tbody tr:first-child", "data-case") == worst
    # filter by class and metric range: a class's own Dice replaces the mean
    page.select_option("#class-filter", "Radius")
    page.fill("#min", "2")  # no Dice is above 1
    assert page.locator("#cases tbody tr").count() == 0
    page.fill("#min", "")
    page.click("#cases tbody tr:first-child")
    page.wait_for_selector(".viewer[data-ready='1']")
    assert worst in page.inner_text("h1")
    arrays_before = sum("/array/" in u for u in pg.requests)
    # ground truth view: toggling a class that has ground-truth pixels changes the picture
    page.select_option("#mode", "gt")
    gt_counts = page.evaluate("fetch(location.pathname.replace(/\\/$/, '') + '/api/models/m0/cases/' + "
                              f"encodeURIComponent('{worst}') + '/meta').then(r => r.json()).then(m => m.gt_pixels)")
    k = max(range(len(gt_counts)), key=lambda i: gt_counts[i])
    before = pg.canvas_hash()
    pg.shot("viewer_case_2d.png")
    page.uncheck(f"input[data-class='{k}']")
    after = pg.canvas_hash()
    assert after != before
    page.check(f"input[data-class='{k}']")
    assert pg.canvas_hash() == before
    page.select_option("#mode", "errors")
    assert pg.canvas_hash() != before
    pg.shot("viewer_case_2d_errors.png")
    page.select_option("#mode", "pred")
    # zoom and pan redraw from what the browser already has: no array is fetched again
    unzoomed = pg.canvas_hash()
    page.locator("#pane-0").scroll_into_view_if_needed()
    box = page.locator("#pane-0").bounding_box()
    cx, cy = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.45
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(100)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 40)
    page.mouse.up()
    assert pg.canvas_hash() != unzoomed
    page.click("#fit")
    assert pg.canvas_hash() == unzoomed
    assert sum("/array/" in u for u in pg.requests) == arrays_before
    # compare with the second run: side by side, per-case difference, difference map
    page.select_option("#compare-with", label="hand_b")
    page.wait_for_selector(".viewer[data-ready='1'] #pane-2")
    assert "beats" in page.inner_text("#compare-summary")
    assert "difference B − A" in page.inner_text("#case-diff")
    assert page.locator("#compare-cases tbody tr").count() == len(per_image)
    d0 = pg.canvas_hash("#pane-2")
    page.click("#all-off")
    assert pg.canvas_hash("#pane-2") != d0 or pg.canvas_hash("#pane-0") != d0
    page.click("#all-on")
    pg.shot("viewer_compare.png")
    # try it: upload an image, get a mask
    src = sorted((viewer_runs["data"] / "synthetic" / "handbone").rglob("*.png"))[0]
    upload = tmp_path / "my_hand.png"
    shutil.copy(src, upload)
    page.goto(server + "/#/try/m0")
    page.wait_for_selector("#upload-file")
    page.set_input_files("#upload-file", str(upload))
    page.click("#predict")
    page.wait_for_selector("#try-result .viewer[data-ready='1']", timeout=60000)
    assert "my_hand.png" in page.inner_text("#try-result")
    with_mask = pg.canvas_hash("#try-result #pane-0")
    page.click("#try-result #all-off")
    assert pg.canvas_hash("#try-result #pane-0") != with_mask  # the mask was drawn over the image
    page.click("#try-result #all-on")
    pg.shot("viewer_try.png")
    # a file that is not an image: a message on the page, not a console error
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#upload-file", str(bad))
    page.click("#predict")
    page.wait_for_selector("#try-error")
    assert "not a .png file" in page.inner_text("#try-error")
    # the browser logs failed responses (415) as console errors: those are the test's own doing
    pg.errors = [e for e in pg.errors if "status of 415" not in e]
    pg.check_clean()


def test_3d_brats_slices_regions_and_largest_tumour(browser, server, viewer_runs):
    import pandas as pd

    pg = Page(browser, server)
    page = pg.page
    page.goto(server + "/#/model/m2")
    page.wait_for_selector("#cases tbody tr")
    worst = str(pd.read_csv(viewer_runs["brats"] / "per_image.csv", index_col=0)["dice"].idxmin())
    assert page.get_attribute("#cases tbody tr:first-child", "data-case") == worst
    page.click("#cases tbody tr:first-child")
    page.wait_for_selector(".viewer[data-ready='1']")
    meta = page.evaluate(f"fetch('/api/models/m2/cases/{worst}/meta').then(r => r.json())")
    assert page.input_value("#slice") == str(meta["largest_slice"][0])  # opens on the largest tumour
    page.select_option("#mode", "gt")
    at_tumour = pg.canvas_hash()
    page.fill("#slice", "0")
    page.dispatch_event("#slice", "input")
    assert pg.canvas_hash() != at_tumour
    assert page.inner_text("#slice-label").startswith("axial 1 /")
    page.click("#jump-largest")
    assert page.input_value("#slice") == str(meta["largest_slice"][0]) and pg.canvas_hash() == at_tumour
    page.uncheck("input[data-class='0']")  # whole tumour off
    assert pg.canvas_hash() != at_tumour
    page.check("input[data-class='0']")
    page.click("#axis-coronal")
    assert page.inner_text("#slice-label").startswith("coronal")
    coronal = pg.canvas_hash()
    assert coronal != at_tumour
    page.click("#jump-largest")
    assert page.input_value("#slice") == str(meta["largest_slice"][1])
    page.select_option("#channel", "t1ce")
    assert pg.canvas_hash() != coronal  # another modality
    page.click("#axis-axial")
    page.click("#jump-largest")
    pg.shot("viewer_case_3d.png")
    pg.check_clean()
