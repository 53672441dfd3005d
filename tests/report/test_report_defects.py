"""Reports that say what happened (issue #12 item 10), on hand-made evaluation folders: a k-fold
folder and an ensemble built on it count each model once, fold overlays are shown, HTML tables have
one header row, CIs over a handful of cases carry a caveat, overlays never repeat a case."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medseg.evaluation import EvaluationTable
from medseg.report.compare import build_report
from medseg.report.plots import plot_overlay

IDS = [f"case{i:02d}" for i in range(8)]


def scores(shift: float, seed: int, ids=IDS) -> EvaluationTable:
    rng = np.random.default_rng(seed)
    dice = np.clip(np.linspace(0.6, 0.8, len(ids)) + shift + rng.normal(0, 0.01, len(ids)), 0, 1)
    per_image = pd.DataFrame({"dice": dice, "iou": dice / (2 - dice)}, index=pd.Index(ids, name="case_id"))
    per_class = pd.DataFrame({"case_id": ids, "class": "vessel", "dice": dice, "iou": dice / (2 - dice)})
    return EvaluationTable(per_image, per_class, split="test", threshold=0.5)


def write_model(folder: Path, table: EvaluationTable, source: dict | None, legacy: bool) -> None:
    if legacy:  # a folder written before evaluation.json existed: the two CSVs only
        folder.mkdir(parents=True)
        table.per_image.to_csv(folder / "per_image.csv")
        table.per_class.to_csv(folder / "per_class.csv", index=False)
    else:
        table.source = source or {}
        table.save(folder)


def fake_kfold_and_ensemble(root: Path, legacy: bool) -> tuple[Path, Path]:
    """``cv/`` (2 fold runs with overlays, ensemble/models/{cv_fold_0, cv_fold_1, cv}) and ``ens/``,
    medseg-ensemble on ``cv`` (models/ holding the same three models)."""
    kfold = root / "cv"
    folds = {f"cv_fold_{k}": scores(0.01 * k, seed=k) for k in range(2)}
    fold_ens = scores(0.03, seed=9)
    rng = np.random.default_rng(0)
    for k in range(2):
        run = kfold / f"fold_{k}"
        write_model(run, folds[f"cv_fold_{k}"], {"runs": [str(run.resolve())], "checkpoint": "best.ckpt"}, legacy)
        t = rng.random((16, 16)) > 0.5
        for label in ("best", "median", "worst"):
            plot_overlay(rng.random((1, 16, 16)).astype(np.float32), t, t, run / "overlays" / f"{label}_x.png", label)
    runs = sorted(str((kfold / f"fold_{k}").resolve()) for k in range(2))
    sources = {**{n: {"runs": [r], "checkpoint": "best.ckpt"} for n, r in zip(folds, runs)},
               "cv": {"runs": runs, "checkpoints": ["best.ckpt"] * 2, "combine": "mean"}}
    kinds = {"cv/fold_0": "fold", "cv/fold_1": "fold", "cv": "2-fold ensemble"}
    for base in (kfold / "ensemble", root / "ens"):
        for name, table in {**folds, "cv": fold_ens}.items():
            write_model(base / "models" / name, table, sources[name], legacy)
        pd.DataFrame({"kind": kinds}).rename_axis("model").to_csv(base / "leaderboard.csv")
    return kfold, root / "ens"


@pytest.mark.parametrize("legacy", [False, True], ids=["evaluation.json", "csv-only folders"])
def test_kfold_and_an_ensemble_built_on_it_count_each_model_once(tmp_path, legacy):
    kfold, ens = fake_kfold_and_ensemble(tmp_path, legacy)
    build_report([kfold, ens], tmp_path / "rep", n_boot=200)
    board = pd.read_csv(tmp_path / "rep" / "leaderboard.csv", index_col=0)
    assert sorted(board.index) == ["cv", "cv_fold_0", "cv_fold_1"]  # 3 models, not 6
    pairs = pd.read_csv(tmp_path / "rep" / "pairwise.csv")
    assert len(pairs) == 3 and (pairs["a"] != pairs["b"]).all()  # never a model against itself
    assert pairs["p_bootstrap"].notna().all()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.startswith("# medseg report") and "3 model(s)" in md and "p=nan" not in md
    # the paired sentences come after the leaderboard and the per-model tables, not on the first screen
    assert md.index("## Leaderboard") < md.index("## Per image") < md.index("## Paired comparisons")
    assert md.index("## Paired comparisons") < md.index(" beats ")


def test_kfold_and_ensemble_reports_show_the_fold_overlays(tmp_path):
    kfold, ens = fake_kfold_and_ensemble(tmp_path, legacy=False)
    for name, folder in (("k", kfold), ("e", ens)):
        build_report([folder], tmp_path / name, n_boot=100)
        md = (tmp_path / name / "report.md").read_text()
        assert "## Overlays" in md
        assert len(re.findall(r"!\[cv_fold_\d: (best|median|worst)_x\]", md)) == 6  # 3 per fold, both folds
        assert (tmp_path / name / "report.html").read_text().count("data:image/png;base64,") >= 6


def test_html_tables_have_a_single_header_row(tmp_path):
    kfold, _ = fake_kfold_and_ensemble(tmp_path, legacy=False)
    html = build_report([kfold], tmp_path / "rep", n_boot=100).read_text()
    heads = re.findall(r"<thead>(.*?)</thead>", html, flags=re.S)
    assert heads and all(h.count("<tr") == 1 for h in heads)
    board_head = heads[0]
    assert re.findall(r"<th>(.*?)</th>", board_head)[:3] == ["model", "kind", "n_cases"]
    assert ".scroll { overflow-x: auto" in html and 'class="scroll"' in html  # wide tables scroll in place


def test_bootstrap_ci_over_few_cases_carries_a_caveat(tmp_path):
    write_model(tmp_path / "few", scores(0.0, 1, ids=IDS[:2]), {"runs": ["few"]}, legacy=False)
    write_model(tmp_path / "many", scores(0.0, 2), {"runs": ["many"]}, legacy=False)
    build_report([tmp_path / "few"], tmp_path / "r1", n_boot=100)
    text = (tmp_path / "r1" / "report.md").read_text()
    assert "Caveat" in text and "only 2 case(s)" in text and "`few`" in text
    build_report([tmp_path / "many"], tmp_path / "r2", n_boot=100)
    assert "Caveat" not in (tmp_path / "r2" / "report.md").read_text()


def test_overlays_never_show_a_case_twice():
    from medseg.report.run import pick_cases

    assert pick_cases(pd.Series({"a": 0.9})) == {"best": "a"}
    assert pick_cases(pd.Series({"a": 0.9, "b": 0.5})) == {"best": "a", "worst": "b"}
    three = pick_cases(pd.Series({"a": 0.9, "b": 0.5, "c": 0.7}))
    assert three == {"best": "a", "median": "c", "worst": "b"}
    many = pick_cases(pd.Series(np.linspace(0, 1, 7), index=list("abcdefg")))
    assert len(set(many.values())) == 3


@pytest.mark.browser
def test_a_wide_leaderboard_scrolls_inside_the_page_in_chromium(tmp_path):
    """Long model names and every metric: the page itself never scrolls sideways (Debian's chromium)."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("Debian's chromium is not installed")
    runs = []
    for k in range(3):
        t = scores(0.01 * k, seed=k)
        for m in ("accuracy", "precision", "recall", "specificity", "auc", "ssim", "hd95", "nsd"):
            t.per_image[m] = t.per_image["dice"]
        folder = tmp_path / f"a_really_long_experiment_name_drive_unet_5fold_seed42_variant_{k}"
        write_model(folder, t, {"runs": [str(folder)]}, legacy=False)
        runs.append(folder)
    html = build_report(runs, tmp_path / "rep", n_boot=100)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.goto(html.resolve().as_uri())
            page_w, view_w = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            box_w = page.evaluate("document.querySelector('.scroll').getBoundingClientRect().right")
        finally:
            browser.close()
    assert page_w <= view_w and box_w <= view_w
