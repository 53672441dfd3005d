"""medseg-report on a real k-fold folder: folds, the fold ensemble and the fold-vs-ensemble line."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.conftest import run_cli


def test_report_of_a_kfold_folder(kfold_dir, tmp_path):
    proc = run_cli("medseg.cli.report", [str(kfold_dir), str(kfold_dir / "fold_0"), "--out", str(tmp_path / "rep"),
                                         "--n-boot", "500"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    board = pd.read_csv(tmp_path / "rep" / "leaderboard.csv", index_col=0)
    # fold_0 given on its own is the model cv_fold_0 (same checkpoint, same split): counted once (#12 item 10)
    assert set(board.index) == {"cv_fold_0", "cv_fold_1", "cv"}
    assert board.loc["cv", "kind"] == "2-fold ensemble"
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"`{kfold_dir / 'fold_0'}` = **cv_fold_0**" in md
    assert "vs mean fold" in md  # the ensemble-vs-folds comparison is shown, not asserted as a result
    assert "Training curves" in md and "Overlays" in md  # fold curves and the fold run's overlays
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in html


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_report_of_a_kfold_folder_and_an_ensemble_built_on_it(kfold_dir, tmp_path):
    """The pairing docs/evaluation.md shows: every model once, no self-comparison, fold overlays."""
    from medseg.pipelines.ensemble import evaluate_ensemble
    from tests.conftest import compose_cfg

    compose_cfg("ensemble", ["members=[x]"], tmp_path / "ctx")  # the runs' saved configs use ${hydra:...}
    evaluate_ensemble([kfold_dir], tmp_path / "ens", metrics=())
    proc = run_cli("medseg.cli.report", [str(kfold_dir), str(tmp_path / "ens"), "--out", str(tmp_path / "rep"),
                                         "--n-boot", "200"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    board = pd.read_csv(tmp_path / "rep" / "leaderboard.csv", index_col=0)
    assert sorted(board.index) == ["cv", "cv_fold_0", "cv_fold_1"]
    pairs = pd.read_csv(tmp_path / "rep" / "pairwise.csv")
    assert len(pairs) == 3 and (pairs["a"] != pairs["b"]).all()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "3 model(s)" in md and "p=nan" not in md
    overlays = [f"cv_fold_{k}: {p.stem}" for k in (0, 1) for p in (kfold_dir / f"fold_{k}" / "overlays").glob("*.png")]
    shown = re.findall(r"!\[(cv_fold_\d: [^\]]+)\]", md.split("## Overlays", 1)[-1])
    assert overlays and sorted(shown) == sorted(overlays), (shown, overlays)  # each fold's test overlays, once
