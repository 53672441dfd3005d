"""medseg-report on hand-made run folders: tables, CSVs, self-contained HTML, headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medseg.report.compare import build_report
from medseg.report.plots import plot_overlay


def fake_run(root: Path, name: str, shift: float, classes=("a", "b"), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    ids = [f"case{i:02d}" for i in range(12)]
    base = np.linspace(0.6, 0.85, 12)
    dice = np.clip(base + shift + rng.normal(0, 0.003, 12), 0, 1)
    pd.DataFrame({"dice": dice, "iou": dice / (2 - dice), "hd95": 10 - 5 * dice}, index=pd.Index(ids, name="case_id")
                 ).to_csv(run / "per_image.csv")
    rows = [{"case_id": c, "class": k, "dice": d - 0.05 * j, "iou": 0.5} for c, d in zip(ids, dice)
            for j, k in enumerate(classes)]
    pd.DataFrame(rows).to_csv(run / "per_class.csv", index=False)
    pd.DataFrame({"epoch": [0, 1, 2], "train/loss": [1.0, 0.7, 0.5], "val/loss": [1.1, 0.8, 0.6],
                  "val/dice": [0.3, 0.5, 0.6]}).to_csv(run / "metrics.csv", index=False)
    img = rng.random((3, 24, 24)).astype(np.float32)
    t = rng.random((24, 24)) > 0.5
    plot_overlay(img, t, t ^ (rng.random((24, 24)) > 0.9), run / "overlays" / "best_case00.png", "best")
    return run


def test_report_tables_csvs_and_html(tmp_path):
    a = fake_run(tmp_path, "A", 0.0, seed=1)
    b = fake_run(tmp_path, "B", 0.012, seed=2)
    html_path = build_report([a, b], tmp_path / "rep", n_boot=2000)
    out = tmp_path / "rep"
    board = pd.read_csv(out / "leaderboard.csv", index_col=0)
    assert list(board.index) == ["B", "A"]
    assert (board["dice_ci_low"] < board["dice"]).all()
    pairs = pd.read_csv(out / "pairwise.csv")
    assert len(pairs) == 1 and pairs.loc[0, "dice_diff"] == pytest.approx(0.012, abs=0.003)
    assert pairs.loc[0, "ci_low"] > 0
    md = (out / "report.md").read_text()
    assert "B beats A by 0.01" in md and "Per class / region" in md and "| max |" in md
    html = html_path.read_text()
    assert "<table" in html and html.count("data:image/png;base64,") >= 4  # bars, 2 curves, overlays
    assert not re.search(r'src="(?!data:)', html)  # self-contained: no external image
    assert len(pd.read_csv(out / "per_image.csv")) == 24


def test_report_of_a_missing_folder_names_it(tmp_path, capsys, monkeypatch):
    from medseg.cli.report import main

    monkeypatch.delenv("MEDSEG_DEBUG", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exc:  # a data error: exit status 3 (medseg.errors), one message
        main([str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "medseg-report: data error:" in err and "nope" in err and "Traceback" not in err


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="headless Chromium not installed (apt-get install -y chromium)")
def test_report_html_renders_in_headless_chromium(tmp_path):
    a = fake_run(tmp_path, "A", 0.0, seed=1)
    b = fake_run(tmp_path, "B", 0.02, seed=2)
    html_path = build_report([a, b], tmp_path / "rep", n_boot=500)
    profile = tmp_path / "profile"
    script = tmp_path / "probe.html"
    # the DOM after load, plus a probe listing each image's decoded width (0 = broken image)
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw",
         "--enable-logging=stderr", "--v=0", "--dump-dom", html_path.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table") >= 4 and "Leaderboard" in dom.stdout
    assert "Uncaught" not in dom.stderr and "Failed to load resource" not in dom.stderr
    shot = tmp_path / "shot.png"
    probe_html = html_path.read_text().replace(
        "</body>", "<script>document.title = 'widths:' + Array.from(document.images).map(i => i.naturalWidth)"
                   ".join(',');</script></body>")
    script.write_text(probe_html)
    probe = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", script.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=120)
    widths = re.search(r"<title>widths:([0-9,]*)</title>", probe.stdout)
    assert widths, probe.stdout[:500]
    values = [int(w) for w in widths.group(1).split(",") if w]
    assert len(values) >= 4 and all(w > 0 for w in values)  # every inline image decoded
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,2000",
                    html_path.resolve().as_uri()], check=False, capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
