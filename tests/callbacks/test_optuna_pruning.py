"""The pruning callback reports each epoch's validation Dice to the trial held in shared storage and
stops a trial that the study's pruner rejects."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from medseg.hparams_search.study import PRUNER_ATTR
from medseg.pipelines.train import train


def make_trial(tmp_path, pruner_cfg):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="prune", storage=url, direction="maximize")
    study.set_user_attr(PRUNER_ATTR, pruner_cfg)
    return study, study.ask(), url


def overrides(tiny_drive, url, number, epochs):
    return ["hparams_search=vessels_optuna", "debug=smoke", "data=drive", f"data.root={tiny_drive}",
            f"trainer.max_epochs={epochs}", "data.samples_per_epoch=8", "model.base_channels=4",
            f"++optuna_trial={{study_name:prune,storage:'{url}',number:{number}}}"]


def test_rejected_trial_is_pruned_after_its_first_epoch(tiny_drive, train_cfg, tmp_path):
    # a Dice can never reach 2: this pruner rejects every report
    study, trial, url = make_trial(tmp_path, {"_target_": "optuna.pruners.ThresholdPruner", "lower": 2.0})
    cfg, run_dir = train_cfg(overrides(tiny_drive, url, trial.number, epochs=3))
    with pytest.raises(optuna.TrialPruned, match="epoch 0"):
        train(cfg, run_dir)
    frozen = study.trials[0]
    assert list(frozen.intermediate_values) == [0]
    # the reported value is the run's logged val/dice of epoch 0 (Lightning's CSV log, saved when it stopped)
    logged = pd.read_csv(run_dir / "logs" / "csv" / "metrics.csv")
    val = logged.loc[logged["epoch"] == 0, "val/dice"].dropna()
    assert len(val) == 1 and frozen.intermediate_values[0] == pytest.approx(float(val.iloc[0]), abs=1e-6)
    assert not (run_dir / "results.json").exists()


def test_kept_trial_reports_every_epoch_and_returns_val_dice(tiny_drive, train_cfg, tmp_path):
    study, trial, url = make_trial(tmp_path, {"_target_": "optuna.pruners.NopPruner"})
    cfg, run_dir = train_cfg(overrides(tiny_drive, url, trial.number, epochs=2))
    results = train(cfg, run_dir)
    reported = study.trials[0].intermediate_values
    assert sorted(reported) == [0, 1]
    # evaluate=false in the sweep config: no test metrics, but the best validation Dice is returned
    assert set(results) == {"val/best_dice"}
    assert results["val/best_dice"] == pytest.approx(max(reported.values()), abs=1e-6)


def test_searches_add_the_pruning_callback_to_the_chosen_callbacks(train_cfg):
    """optuna_base includes conf/callbacks/optuna_pruning.yaml on top of the user's callbacks= choice."""
    cfg, _ = train_cfg(["hparams_search=vessels_quick", "callbacks=notify"])
    assert cfg.callbacks.optuna_pruning._target_ == "medseg.callbacks.optuna_pruning.OptunaPruning"
    assert "notify" in cfg.callbacks and "model_checkpoint" in cfg.callbacks
    cfg, _ = train_cfg([])
    assert "optuna_pruning" not in cfg.callbacks  # a plain run has no pruning callback
