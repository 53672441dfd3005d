"""k-fold: every fold trained once, OOF covers the training pool, ensemble scored, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import REPO


def test_kfold_trains_all_folds_and_writes_oof_and_ensemble(kfold_dir, tiny_drive):
    out = kfold_dir
    folds = pd.read_csv(out / "folds.csv", index_col=0)
    assert list(folds.index) == [0, 1]
    oof = pd.read_csv(out / "oof_per_image.csv", index_col=0)
    train_pool = sorted(p.name.split("_")[0] for p in (tiny_drive / "training" / "images").iterdir())
    assert sorted(oof.index.str.split("_").str[0]) == train_pool  # every pool case scored exactly once
    splits = [json.loads((out / f"fold_{k}" / "splits.json").read_text()) for k in range(2)]
    assert set(splits[0]["val"]).isdisjoint(splits[1]["val"])
    assert splits[0]["test"] == splits[1]["test"]
    board = pd.read_csv(out / "ensemble" / "leaderboard.csv", index_col=0)
    assert set(board["kind"]) == {"fold", "2-fold ensemble"}
    assert (board["dice_ci_low"] <= board["dice"]).all() and (board["dice"] <= board["dice_ci_high"]).all()
    assert "Out-of-fold Dice" in (out / "report.md").read_text()
    assert any((out / "fold_0" / "oof" / "cases").glob("*.npz"))
    for k in range(2):  # each fold's OOF evaluation saved the masks it scored (medseg-view reads them)
        fold_oof = pd.read_csv(out / f"fold_{k}" / "oof" / "per_image.csv", index_col=0)
        assert sorted(p.stem for p in (out / f"fold_{k}" / "oof" / "predictions").glob("*.npz")) == \
            sorted(fold_oof.index.astype(str))
    # each fold's saved config reloads and names its fold
    from omegaconf import OmegaConf
    assert OmegaConf.load(out / "fold_1" / ".hydra" / "config.yaml").data.fold == 1


def test_resume_with_another_config_is_refused(kfold_dir, tiny_drive):
    from medseg.data.case import DataError
    from medseg.pipelines.kfold import run_kfold
    from tests.pipelines.conftest import kfold_cfg

    before = (kfold_dir / "fold_0" / "results.json").stat().st_mtime_ns
    with pytest.raises(DataError, match=r"optimizer\.lr: 0\.002 -> 0\.123"):
        run_kfold(kfold_cfg(kfold_dir, tiny_drive, extra=["optimizer.lr=0.123"]), kfold_dir)
    assert (kfold_dir / "fold_0" / "results.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_kill_after_fold_one_then_resume(tmp_path, tiny_drive):
    """Kill ``medseg-kfold`` once fold 0 is finished; the rerun keeps fold 0 and trains the rest."""
    out = tmp_path / "cv"
    args = [sys.executable, "-m", "medseg.cli.kfold", "debug=smoke", f"data.root={tiny_drive}", "folds=3",
            "metrics=[hd95]", "trainer.max_epochs=2", f"hydra.run.dir={out}"]
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_ALBUMENTATIONS_UPDATE="1", MEDSEG_ROOT=str(tmp_path))
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "fold_0" / "results.json"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "fold 0 never finished"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "fold_2" / "results.json").exists()
    ckpts = {p: p.stat().st_mtime_ns for p in (out / "fold_0" / "checkpoints").glob("*.ckpt")}
    results = first.read_text()
    assert ckpts

    rerun = subprocess.run(args, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "fold 0: finished earlier" in rerun.stderr + rerun.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "fold_0" / "checkpoints").glob("*.ckpt")} == ckpts
    assert first.read_text() == results
    for k in (1, 2):
        assert (out / f"fold_{k}" / "results.json").is_file()
    assert (out / "ensemble" / "leaderboard.csv").is_file()
