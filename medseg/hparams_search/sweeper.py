"""``OptunaStudySweeper``: a Hydra sweeper on current Optuna with shared storage, resume and pruning.

Each trial is sampled here, in the sweeper process, then run as one Hydra job through the configured
launcher (basic, submitit, ...) with the sampled values as plain overrides; so every DDP rank of a
trial sees the same hyperparameters. The job gets ``optuna_trial={study_name, storage, number}`` so
that :class:`medseg.callbacks.optuna_pruning.OptunaPruning` can report each epoch's validation metric
to the same trial and stop it early; a pruned job raises ``optuna.TrialPruned`` and is told PRUNED.

The loop stops when the study holds ``n_trials`` COMPLETE + PRUNED (+ still RUNNING) trials, so
rerunning the same command after an interruption keeps every finished trial and runs the rest.

Hydra reaches this class through the plugin
:class:`hydra_plugins.medseg_optuna_sweeper.medseg_optuna_sweeper.MedsegOptunaSweeper` (``hydra/sweeper=
medseg_optuna``), a thin adapter that imports this module only when a sweep starts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from medseg.hparams_search.search_space import parse_search_space, trial_overrides
from medseg.hparams_search.study import (
    PRUNER_ATTR,
    ask,
    heartbeat,
    open_storage,
    open_study,
    sqlite_url,
    trials_left,
)
from medseg.hparams_search.summary import write_summary
from medseg.utils.webhook import post_message

log = logging.getLogger(__name__)


def quote(value: str) -> str:
    """Quote a string for the right-hand side of a Hydra override."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class OptunaStudySweeper(Sweeper):
    """Hydra sweeper running an Optuna study (see ``docs/sweeps.md`` for every option)."""

    def __init__(
        self,
        study_name: str = "medseg",
        storage: str | None = None,
        direction: Literal["minimize", "maximize"] = "maximize",
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: Any = None,
        pruner: Any = None,
        params: dict[str, str] | None = None,
        enqueue_trials: Sequence[dict[str, Any]] | None = None,
        heartbeat_interval: int | None = 10,
        grace_period: int | None = 30,
        max_retry: int = 1,
        max_consecutive_failures: int = 3,
        summary: bool = True,
        notify_url: str | None = None,
    ) -> None:
        super().__init__()
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"hydra.sweeper: n_trials ({n_trials}) and n_jobs ({n_jobs}) must be >= 1")
        self.study_name, self.storage_url, self.direction = study_name, storage, direction
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.params = dict(params or {})
        self.enqueue_trials = list(enqueue_trials or [])
        self.heartbeat_interval, self.grace_period, self.max_retry = heartbeat_interval, grace_period, max_retry
        self.max_consecutive_failures, self.summary = max_consecutive_failures, summary
        self.notify_url = notify_url or None
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # ------------------------------------------------------------------ helpers
    def _container(self, node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    def _build_study(self, sweep_dir: Path) -> tuple[optuna.Study, str, optuna.storages.RDBStorage]:
        url = self.storage_url or sqlite_url(sweep_dir / "optuna.db")
        storage = open_storage(url, self.heartbeat_interval, self.grace_period, self.max_retry)
        pruner_cfg = self._container(self.pruner_cfg)
        pruner = instantiate(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()
        study = open_study(self.study_name, storage, self.direction, pruner=pruner)
        study.set_user_attr(PRUNER_ATTR, pruner_cfg)
        sampler_cfg = self._container(self.sampler_cfg) or {"_target_": "optuna.samplers.TPESampler"}
        n_before = len(study.get_trials(deepcopy=False))
        if "seed" in sampler_cfg and sampler_cfg["seed"] is not None:
            # a resumed study must not replay the random draws of its first trials
            sampler_cfg = {**sampler_cfg, "seed": int(sampler_cfg["seed"]) + n_before}
        study.sampler = instantiate(sampler_cfg)
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
        log.info("study '%s' on %s: %d trials so far (%d finished), target n_trials=%d",
                 self.study_name, url, n_before, done, self.n_trials)
        return study, url, storage

    @staticmethod
    def _outcome(ret: JobReturn) -> tuple[TrialState, float | None, BaseException | None]:
        if ret.status == JobStatus.COMPLETED:
            value = ret.return_value
            try:
                value = float(value)
            except (TypeError, ValueError):
                return TrialState.FAIL, None, ValueError(
                    f"the job returned {value!r}, not a number (check optimized_metric)")
            if math.isnan(value):
                return TrialState.FAIL, None, ValueError("the job returned NaN")
            return TrialState.COMPLETE, value, None
        err = ret._return_value if isinstance(ret._return_value, BaseException) else None
        if isinstance(err, optuna.TrialPruned):
            return TrialState.PRUNED, None, None
        return TrialState.FAIL, None, err

    # -------------------------------------------------------------------- sweep
    def _notify(self, text: str) -> None:
        if self.notify_url:
            post_message(self.notify_url, text)

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run trials until the study holds ``n_trials`` finished ones; post to ``notify_url`` at the end."""
        try:
            returns, study = self._sweep(arguments)
        except BaseException as exc:
            self._notify(f":x: sweep '{self.study_name}' failed: {type(exc).__name__}: {exc}")
            raise
        done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        best = f"best trial {study.best_trial.number}: {study.best_value:.4f}" if done else "no complete trial"
        self._notify(f":white_check_mark: sweep '{self.study_name}' finished: {len(done)} complete trials, {best}")
        return returns

    def _sweep(self, arguments: list[str]) -> tuple[list[Sequence[JobReturn]], optuna.Study]:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        HydraConfig.instance().set_config(self.config)  # lets ${hydra:...} resolve in the sweep config
        sweep_dir = Path(self.config.hydra.sweep.dir).expanduser().resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = parse_search_space(parser, self._container(self.params), arguments)
        if not space:
            log.warning("no sweep parameters (hydra.sweeper.params or interval()/choice() on the command line)")
        study, url, storage = self._build_study(sweep_dir)
        for params in self.enqueue_trials:
            study.enqueue_trial(self._container(params), skip_if_exists=True)

        returns: list[Sequence[JobReturn]] = []
        failures = 0
        while (left := trials_left(study, self.n_trials)) > 0:
            trials = [ask(study, space) for _ in range(min(self.n_jobs, left))]
            try:
                with heartbeat(storage, trials):  # first beat right away: a kill from here on is detectable
                    batch = []
                    for trial in trials:
                        tag = f"{{study_name:{quote(self.study_name)},storage:{quote(url)},number:{trial.number}}}"
                        overrides = fixed + trial_overrides(trial.params)
                        trial.set_user_attr("overrides", overrides)
                        batch.append(overrides + [f"++optuna_trial={tag}"])
                    self.validate_batch_is_legal(batch)
                    results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            except BaseException:
                for trial in trials:  # Ctrl-C, a bad override or a launcher crash: no trial stays RUNNING
                    study.tell(trial, state=TrialState.FAIL)
                raise
            last_err = None
            for trial, ret in zip(trials, results):  # tell every trial of the batch before judging
                state, value, err = self._outcome(ret)
                if ret.hydra_cfg is not None:
                    trial.set_user_attr("output_dir", str(ret.hydra_cfg.hydra.runtime.output_dir))
                if state == TrialState.COMPLETE:
                    study.tell(trial, value, state=state)
                else:
                    study.tell(trial, state=state)  # PRUNED keeps its last reported value
                log.info("trial %d %s%s  %s", trial.number, state.name,
                         f" value={value:.5f}" if value is not None else "", " ".join(trial_overrides(trial.params)))
                if state == TrialState.FAIL:
                    failures, last_err = failures + 1, err
                    log.error("trial %d failed: %r", trial.number, err)
                else:
                    failures = 0
            returns.append(results)
            if failures >= self.max_consecutive_failures:
                raise RuntimeError(f"{failures} trials failed in a row; last error: {last_err!r}") from last_err

        if self.summary:
            write_summary(study, sweep_dir / "summary", self.config)
        return returns, study
