"""Structured config of the medseg Optuna sweeper, stored as ``hydra/sweeper: medseg_optuna``.

Kept import-light (no optuna, no torch): Hydra imports every ``hydra_plugins`` module on each start.
No ``from __future__ import annotations`` here: Hydra executes plugin modules outside ``sys.modules``,
where dataclasses cannot resolve string annotations.
"""

# typing.Optional/Dict/List on purpose: OmegaConf structured configs do not read `X | None` here
# ruff: noqa: UP006, UP035, UP045

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class MedsegOptunaSweeperConf:
    _target_: str = "hydra_plugins.medseg_optuna_sweeper.medseg_optuna_sweeper.MedsegOptunaSweeper"
    # sampler/pruner stay configs: the sweeper offsets the seed on resume and hands the pruner to trials
    _recursive_: bool = False
    study_name: str = "medseg"
    # any SQLAlchemy URL; null: sqlite:///<hydra.sweep.dir>/optuna.db
    storage: Optional[str] = None
    direction: str = "maximize"
    # target number of COMPLETE + PRUNED trials in the study (over all workers and reruns)
    n_trials: int = 20
    # trials handed to the launcher at once (parallel with submitit/joblib launchers)
    n_jobs: int = 1
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 42})
    pruner: Any = field(default_factory=lambda: {"_target_": "optuna.pruners.MedianPruner",
                                                 "n_startup_trials": 3, "n_warmup_steps": 1})
    params: Optional[Dict[str, str]] = None
    # trials to run first: list of {param: value}
    enqueue_trials: Optional[List[Any]] = None
    # a RUNNING trial with no heartbeat for grace_period s is marked FAIL and retried max_retry times
    heartbeat_interval: Optional[int] = 10
    grace_period: Optional[int] = 30
    max_retry: int = 1
    max_consecutive_failures: int = 3
    # best-trial YAML, trials table, history and importance plots in <sweep dir>/summary
    summary: bool = True
    # a webhook (Slack-compatible JSON) told when the sweep finishes or fails
    notify_url: Optional[str] = None


ConfigStore.instance().store(group="hydra/sweeper", name="medseg_optuna", node=MedsegOptunaSweeperConf,
                             provider="medseg")
