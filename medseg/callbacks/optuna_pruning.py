"""Report the monitored validation metric to the running Optuna trial each epoch; stop pruned trials.

The sweeper (:mod:`medseg.hparams_search.sweeper`) passes ``optuna_trial={study_name, storage, number}`` to each
trial's job. This callback reloads that trial from the shared storage (so it works in a SLURM job on
another machine), calls ``trial.report(value, epoch)`` and ``trial.should_prune()`` on rank 0, broadcasts
the decision to every DDP rank, and raises :class:`optuna.TrialPruned` on all of them; the sweeper then
tells the trial PRUNED. With no trial (a plain run) it does nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Args:
        trial: ``{study_name, storage, number}`` of the trial, or ``None`` to do nothing.
        monitor: the logged validation metric reported each epoch (e.g. ``val/dice``).
    """

    def __init__(self, trial: Mapping[str, Any] | None, monitor: str = "val/dice") -> None:
        self.trial_info = dict(trial) if trial else None
        self.monitor = monitor
        self._trial: Any = None  # the live optuna.Trial, loaded on first use

    def _load(self) -> Any:
        assert self.trial_info is not None  # only called for a sweep trial
        if self._trial is None:
            # imported here, not at the top: only sweep trials pay for importing optuna (no cycle hides
            # here; the import-linter contract in pyproject.toml keeps hparams_search below callbacks)
            import optuna
            from hydra.utils import instantiate

            from medseg.hparams_search.study import PRUNER_ATTR, load_trial

            info = self.trial_info
            storage: Any = optuna.storages.get_storage(info["storage"])  # an RDBStorage (or its cache)
            attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(info["study_name"]))
            pruner_cfg = attrs.get(PRUNER_ATTR)
            # the sweep's own pruner (a study without one stored never prunes)
            pruner = instantiate(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()
            self._trial = load_trial(storage, info["study_name"], info["number"], pruner=pruner)
        return self._trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.trial_info is None or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero:
            logged = trainer.callback_metrics.get(self.monitor)
            if logged is None:
                raise KeyError(f"OptunaPruning: '{self.monitor}' was not logged (logged: "
                               f"{sorted(trainer.callback_metrics)})")
            value = float(logged)
            trial = self._load()
            if math.isfinite(value):
                trial.report(value, step=epoch)
                prune = trial.should_prune()
        prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            import optuna

            msg = f"trial {self.trial_info['number']} pruned at epoch {epoch}"
            log.info(msg)
            raise optuna.TrialPruned(msg)
