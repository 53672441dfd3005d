"""``medseg-ensemble`` as a user runs it on the two folds of the shared k-fold run (tests/cli/conftest.py):
each member scores as its own evaluation did, the ensemble is scored on the same cases; a folder that is
not a run is a clear error."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.cli.conftest import assert_one_line_error
from tests.conftest import run_cli


def test_ensemble_of_two_folds(kfold_run, tmp_path):
    cv, _ = kfold_run
    out = tmp_path / "e"
    proc = run_cli("medseg.cli.ensemble", [f"members=[{cv / 'fold_0'},{cv / 'fold_1'}]",
                                           f"hydra.run.dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {out / 'report.md'}" in proc.stdout
    board = pd.read_csv(out / "leaderboard.csv", index_col="model")
    assert list(board.index) == ["fold_0", "fold_1", "ensemble"] and (board["n_cases"] == 2).all()
    for k in (0, 1):  # a member scored by the ensemble command = that fold's own evaluation after training
        mine = pd.read_csv(out / "models" / f"fold_{k}" / "per_image.csv", index_col=0)
        own = pd.read_csv(cv / f"fold_{k}" / "per_image.csv", index_col=0)
        pd.testing.assert_frame_equal(mine[["dice", "accuracy"]], own.loc[mine.index, ["dice", "accuracy"]],
                                      atol=1e-6)
    ens = pd.read_csv(out / "models" / "ensemble" / "per_image.csv", index_col=0)
    assert list(ens.index) == list(mine.index)


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_member_that_is_not_a_run(tmp_path):
    missing = tmp_path / "nothere"
    proc = run_cli("medseg.cli.ensemble", [f"members=[{missing}]", f"hydra.run.dir={tmp_path / 'e'}"], tmp_path)
    assert_one_line_error(proc, "medseg-ensemble", 3, f"{missing}: not a medseg run folder (no .hydra/config.yaml)")
