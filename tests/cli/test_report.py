"""``medseg-report`` as a user runs it on a training run and a k-fold folder (tests/cli/conftest.py): the
leaderboard carries each run's own scores; a folder without results is a clear error."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.cli.conftest import assert_one_line_error
from tests.conftest import run_cli


def test_report_on_a_run_and_a_kfold_folder(finished_run, kfold_run, tmp_path):
    run_dir, _ = finished_run
    cv, _ = kfold_run
    out = tmp_path / "report"
    proc = run_cli("medseg.cli.report", [str(run_dir), str(cv), "--out", str(out), "--n-boot", "200"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {out / 'report.html'}" in proc.stdout
    for name in ("report.html", "report.md", "leaderboard.csv", "per_image.csv", "pairwise.csv"):
        assert (out / name).is_file(), name
    board = pd.read_csv(out / "leaderboard.csv", index_col="model")
    assert set(board.index) == {run_dir.name, cv.name, f"{cv.name}_fold_0", f"{cv.name}_fold_1"}
    trained = json.loads((run_dir / "results.json").read_text())
    assert abs(board.loc[run_dir.name, "dice"] - trained["test/dice"]) < 1e-6
    assert abs(board.loc[run_dir.name, "auc"] - trained["test/auc"]) < 1e-6
    assert board.loc[run_dir.name, "n_cases"] == 2 and board.loc[cv.name, "kind"] == "2-fold ensemble"


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_folder_without_results(tmp_path):
    missing = tmp_path / "nothing"
    proc = run_cli("medseg.cli.report", [str(missing), "--out", str(tmp_path / "r")], tmp_path)
    assert_one_line_error(proc, "medseg-report", 3, f"{missing}: no per_image.csv here")
    assert not (tmp_path / "r" / "report.html").exists()
