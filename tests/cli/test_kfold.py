"""``medseg-kfold`` as a user runs it (the shared 2-fold run of tests/cli/conftest.py): one trained fold
per split, out-of-fold scores for every training case, the fold ensemble's leaderboard; too few folds is
a clear error."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.cli.conftest import assert_one_line_error
from tests.conftest import assert_beats_constant, run_cli

FOLD_AUC_FLOOR = 0.65  # each fold's test AUC, measured 0.740 / 0.742 on this run


def test_two_folds_train_and_score_out_of_fold(kfold_run, tiny_drive):
    cv, proc = kfold_run
    assert f"2-fold cross-validation in {cv}" in proc.stdout and str(cv / "report.md") in proc.stdout
    folds = pd.read_csv(cv / "folds.csv", index_col="fold")
    assert list(folds.index) == [0, 1] and folds["n_val"].sum() == 6
    oof = pd.read_csv(cv / "oof_per_image.csv", index_col=0)
    training = sorted(p.stem.split("_")[0] + "_training" for p in (tiny_drive / "training" / "images").iterdir())
    assert sorted(oof.index) == training  # every training case scored once, by the fold that did not train on it
    for k in (0, 1):
        val = json.loads((cv / f"fold_{k}" / "splits.json").read_text())["val"]
        assert sorted(oof.index[oof["fold"] == k]) == sorted(val)
        assert_beats_constant(json.loads((cv / f"fold_{k}" / "results.json").read_text()), FOLD_AUC_FLOOR)
    board = pd.read_csv(cv / "ensemble" / "leaderboard.csv", index_col="model")
    assert list(board.index) == [f"{cv.name}/fold_0", f"{cv.name}/fold_1", cv.name]
    assert (board["n_cases"] == 2).all()


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_one_fold_is_refused(tiny_drive, tmp_path):
    proc = run_cli("medseg.cli.kfold", ["debug=smoke", "folds=1", f"data.root={tiny_drive}",
                                        f"hydra.run.dir={tmp_path / 'cv'}"], tmp_path)
    assert_one_line_error(proc, "medseg-kfold", 2, "folds=1: k-fold needs at least 2 folds, got 1")
    assert not list(tmp_path.rglob("*.ckpt"))
