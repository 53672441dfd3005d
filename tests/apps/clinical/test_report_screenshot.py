"""The full-size case report, rendered by headless Chromium: the screenshot in docs/clinical.md comes from here.

A 240 x 240 x 155, 1 mm synthetic MNI head (BraTS header affine) with a random known placement and a
tumour in the left precentral gyrus, cross-checked against DEMO-001. ``MEDSEG_UPDATE_DOCS=1`` writes the
screenshot to ``docs/img/clinical_report.png``. Slow (about 20-40 s on the shared 2-core machine: a full
size head, registration at 3 mm, the report's plots, Chromium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.apps.clinical import db
from medseg.apps.clinical.flow import diagnose
from medseg.data.synth.brats import TRAIN_DIR, brats_affine, write_brats
from medseg.data.synth.head import random_world_from_mni

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def screenshot(html: Path, png: Path, width: int = 1150, height: int = 1900) -> Path:
    """Render ``html`` (self-contained: no network) and save the top ``height`` pixels as a palette PNG."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    raw = png.with_suffix(".raw.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                   else route.abort())
        page.goto(html.resolve().as_uri())
        page.screenshot(path=str(raw), full_page=False)
        browser.close()
    Image.open(raw).convert("RGB").quantize(colors=96).save(png, optimize=True)
    raw.unlink()
    return png


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_full_size_report_renders_with_atlas_registration_and_disclaimer(tmp_path):
    shape = (240, 240, 155)
    affine = brats_affine(shape)
    # a mild random pose keeps the whole brain inside the 155 mm box (the MNI brain is 152 mm tall)
    place = random_world_from_mni(np.random.default_rng(11), shape, affine, max_rotation_deg=4.0,
                                  scale_range=(0.9, 0.95), max_shift_mm=3.0)
    root = write_brats(tmp_path / "BraTS", n_cases=1, shape=shape, seed=11, head="mni",
                       tumours_mni=[[((-38.0, -20.0, 55.0), 9.0)]], world_from_mni=[place])
    url = f"sqlite:///{tmp_path / 'clinical.db'}"
    engine = db.connect(url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    engine.dispose()
    result = diagnose(case_dir=root / TRAIN_DIR / "BraTS20_Training_001", patient_id="DEMO-001", db_url=url,
                      out_dir=tmp_path / "out")
    reg, loc = result.registration, result.localisation
    print(f"registration of one 240x240x155 1 mm case at 3 mm, one thread (shared 2-core machine): "
          f"{reg.seconds:.1f} s, Dice {reg.dice:.3f}")
    assert reg.ok and loc.found_regions[0].name == "left precentral gyrus" and loc.hemisphere == "left"
    page = result.report_html.read_text()
    for text in ("Research software, not a diagnosis", "Harvard-Oxford", "Registration:", "Identity:",
                 "Suggested by symptoms, not seen in the image"):
        assert text in page
    png = screenshot(result.report_html, tmp_path / "clinical_report.png")
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"))
    assert png.stat().st_size < 300_000 and img.shape == (1900, 1150)
    assert img.std() > 20  # not a blank page: text, tables and the slices
    if os.environ.get("MEDSEG_UPDATE_DOCS") == "1":
        (REPO / "docs" / "img").mkdir(exist_ok=True)
        shutil.copy(png, REPO / "docs" / "img" / "clinical_report.png")
