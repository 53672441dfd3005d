"""The sweep summary hands over what it found: the best trial's experiment, replayed as its header says,
reruns the trial exactly (same composed values, same metrics on CPU), even for a value that a group
composed after experiments (``debug=smoke``'s ``debug/model`` sizes) would otherwise reset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from omegaconf import OmegaConf

from medseg.hparams_search.summary import varied_params

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", MEDSEG_ROOT=str(cwd), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "medseg.cli.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_best_trial_experiment_replays_the_trial_exactly(tiny_drive, tmp_path):
    # base_channels 12 is not the smoke size (8) that debug/model/smoke_unet.yaml sets after experiments
    _run(["-m", "hparams_search=vessels_optuna", "debug=smoke", "data=drive", f"data.root={tiny_drive}",
          "data.samples_per_epoch=16", "hydra.sweeper.study_name=replay", "hydra.sweeper.n_trials=1",
          "model.base_channels=choice(12)"], tmp_path)
    sweep = tmp_path / "outputs" / "sweeps" / "replay"
    best = (sweep / "summary" / "experiment" / "best_trial.yaml").read_text()
    header = [line for line in best.splitlines() if line.startswith("# Rerun")][0]
    assert "<this folder" not in header and str((sweep / "summary").resolve()) in header
    assert "debug=" not in header  # the smoke settings travel inside the file
    replay_args = header.split("medseg-train ", 1)[1].split()
    _run([*replay_args, f"data.root={tiny_drive}", f"hydra.run.dir={tmp_path / 'replay'}"], tmp_path)

    trial_cfg = OmegaConf.load(sweep / "trial_0" / ".hydra" / "config.yaml")
    replay_cfg = OmegaConf.load(tmp_path / "replay" / ".hydra" / "config.yaml")
    assert replay_cfg.model.base_channels == trial_cfg.model.base_channels == 12
    for key in ("model", "loss", "optimizer", "data.patch_size", "data.samples_per_epoch", "trainer.max_epochs"):
        assert OmegaConf.select(replay_cfg, key) == OmegaConf.select(trial_cfg, key), key
    trial = pd.read_csv(sweep / "trial_0" / "metrics.csv")
    replay = pd.read_csv(tmp_path / "replay" / "metrics.csv")
    cols = ["val/loss", "val/dice", "train/loss"]
    pd.testing.assert_frame_equal(trial[cols], replay[cols])
    assert (tmp_path / "replay" / "per_image.csv").is_file()  # the replay also tests the trial


def _study(values, params):
    study = optuna.create_study(direction="maximize")
    for v, p in zip(values, params):
        dist = {k: optuna.distributions.FloatDistribution(0, 10) for k in p}
        study.add_trial(optuna.trial.create_trial(params=p, distributions=dist, value=v))
    return study


def test_importance_only_over_parameters_that_varied_and_only_with_signal():
    params = [{"a": 1.0, "b": 5.0}, {"a": 2.0, "b": 5.0}, {"a": 3.0, "b": 5.0}]
    assert varied_params(_study([0.1, 0.2, 0.3], params)) == ["a"]  # b never varied
    assert varied_params(_study([0.0, 0.0, 0.0], params)) == []     # all tied: no signal
    assert varied_params(_study([0.1, 0.2], params[:2])) == []      # two trials: 1/n for everything
