"""medseg-ensemble on a shared 2-fold run: identical members, OOF weights, vote, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from medseg.pipelines.ensemble import evaluate_ensemble
from tests.conftest import compose_cfg, run_cli


@pytest.fixture
def hydra_ctx(tmp_path):
    # members may be ordinary run folders whose saved configs hold ${hydra:...} interpolations
    compose_cfg("ensemble", ["members=[x]"], tmp_path / "ctx")


def test_ensemble_of_identical_members_equals_each_member(kfold_dir, tmp_path, hydra_ctx):
    twin = tmp_path / "cv_twin"
    shutil.copytree(kfold_dir, twin)
    board = evaluate_ensemble([kfold_dir, twin], tmp_path / "out", method="weighted", weights="oof",
                              metrics=("hd95",))
    assert {"cv/fold_0", "cv/fold_1", "cv", "cv_twin", "ensemble"} <= set(board.index)
    assert board.loc["ensemble", "dice"] == pytest.approx(board.loc["cv", "dice"], abs=1e-9)
    weights = json.loads((tmp_path / "out" / "weights.json").read_text())
    assert sum(weights.values()) == pytest.approx(1.0)
    per_image = pd.read_csv(tmp_path / "out" / "models" / "ensemble" / "per_image.csv", index_col=0)
    assert np.isclose(per_image["dice"].mean(), board.loc["ensemble", "dice"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "2-fold ensemble Dice" in report and "vs mean fold" in report and "beats" in report


def test_vote_and_repeated_member_names(kfold_dir, tmp_path, hydra_ctx):
    board = evaluate_ensemble([kfold_dir, kfold_dir], tmp_path / "out", method="vote", metrics=())
    assert board.loc["cv", "kind"] == "2-fold ensemble" and "cv#2" in board.index
    assert board.loc["ensemble", "kind"] == "ensemble (vote)"
    assert board.loc["ensemble", "dice"] == pytest.approx(board.loc["cv", "dice"], abs=1e-9)
    with pytest.raises(ValueError, match="weights"):
        evaluate_ensemble([kfold_dir], tmp_path / "o2", method="weighted", metrics=())


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_cli_prints_the_leaderboard(kfold_dir, tmp_path):
    proc = run_cli("medseg.cli.ensemble", [f"members=[{kfold_dir}]", "metrics=[]", f"hydra.run.dir={tmp_path}/e"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2-fold ensemble" in proc.stdout and (tmp_path / "e" / "leaderboard.csv").is_file()


def test_ensemble_of_two_run_folders_equals_the_kfold_ensemble(kfold_dir, tmp_path, hydra_ctx):
    board = evaluate_ensemble([kfold_dir / "fold_0", kfold_dir / "fold_1"], tmp_path / "out", metrics=())
    assert list(board["kind"]) == ["model", "model", "ensemble (mean)"]
    kfold_board = pd.read_csv(kfold_dir / "ensemble" / "leaderboard.csv", index_col=0)
    # the same two checkpoints averaged: the same Dice as medseg-kfold's fold ensemble
    assert board.loc["ensemble", "dice"] == pytest.approx(kfold_board.loc["cv", "dice"], abs=1e-9)
    assert board.loc["fold_0", "dice"] == pytest.approx(kfold_board.loc["cv/fold_0", "dice"], abs=1e-9)
