"""medseg-report on a real k-fold folder: folds, the fold ensemble and the fold-vs-ensemble line."""

from __future__ import annotations

import pandas as pd

from tests.conftest import run_cli


def test_report_of_a_kfold_folder(kfold_dir, tmp_path):
    proc = run_cli("medseg.cli.report", [str(kfold_dir), str(kfold_dir / "fold_0"), "--out", str(tmp_path / "rep"),
                                         "--n-boot", "500"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    board = pd.read_csv(tmp_path / "rep" / "leaderboard.csv", index_col=0)
    assert {"cv_fold_0", "cv_fold_1", "cv", "fold_0"} <= set(board.index)
    assert board.loc["cv", "kind"] == "2-fold ensemble"
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "vs mean fold" in md  # the ensemble-vs-folds comparison is shown, not asserted as a result
    assert "Training curves" in md and "Overlays" in md  # fold curves and the fold run's overlays
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in html
