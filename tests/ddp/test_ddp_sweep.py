"""Sweep trials trained with DDP (2 CPU processes each): the ranks of a trial train that trial's sampled
hyperparameters (no rank starts a sweep of its own), and consecutive DDP trials run in one sweeper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.mark.slow
def test_each_ddp_trial_trains_its_own_sample_on_every_rank(tiny_drive, tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1", MEDSEG_ROOT=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]))
    args = ["-m", "hparams_search=vessels_optuna", "debug=smoke", "data=drive", f"data.root={tiny_drive}",
            "data.val_fraction=0.5", "trainer=ddp_cpu", "data.batch_size=4", "trainer.max_epochs=2",
            "model.base_channels=4", "hydra.sweeper.study_name=ddp", "hydra.sweeper.n_trials=2",
            "+callbacks.lr._target_=valcount.LrRecord", "+callbacks.lr.out=${hydra:runtime.output_dir}"]
    proc = subprocess.run([sys.executable, "-m", "medseg.cli.train", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    sweep = tmp_path / "outputs" / "sweeps" / "ddp"
    trials = optuna.load_study(study_name="ddp", storage=f"sqlite:///{sweep / 'optuna.db'}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # the child ranks added no trials
    assert trials[0].params["optimizer.lr"] != trials[1].params["optimizer.lr"]
    for t in trials:
        folder = sweep / f"trial_{t.number}"
        lrs = [json.loads((folder / f"lr_rank{r}.json").read_text())["lr"] for r in (0, 1)]
        assert lrs == [pytest.approx(t.params["optimizer.lr"])] * 2
        assert sorted(t.intermediate_values) == [0, 1]  # reported by rank 0 for the pruner
