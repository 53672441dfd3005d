"""Sweep summary: the best trial as a ready-to-run experiment YAML, a table of trials, and Optuna's
optimisation-history and parameter-importance plots (matplotlib backend; no plotly needed)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Set
from pathlib import Path
from typing import Any, cast

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from medseg.report.tables import markdown_table
from medseg.utils.io import save_with, write_text_atomic

log = logging.getLogger(__name__)


#: keys of a trial's config that a replay must not copy: Hydra's own, the run's folders, the sweep's
#: pruning callback and trial tag, and the per-trial "no test set" switch (the replay tests the trial)
_NOT_REPLAYED = ("hydra", "paths", "callbacks", "logger", "optuna_trial", "hparams_search", "task_name",
                 "evaluate", "optimized_metric")


def best_trial_yaml(trial: optuna.trial.FrozenTrial, group_names: set[str], study_name: str,
                    late_groups: Set[str] = frozenset(), config_dir: str | Path | None = None) -> str:
    """An experiment config (``# @package _global_``) that reruns ``trial`` exactly: config-group choices
    become ``override /group: option`` defaults, every other value is set in place.

    Groups listed after ``experiment`` in the defaults (``late_groups``, e.g. ``debug=smoke`` and its
    ``debug/model`` sizes) are composed *after* an experiment, so passing them again at replay would
    overwrite what the trial chose (``model.base_channels: 32`` reset to the smoke size 8). When the
    trial's saved config is at hand, the file therefore carries the trial's whole configuration (what
    the late groups set included) and the replay needs no ``debug=``; without it, only the swept values
    are written and the header names the late groups for the command line.
    """
    defaults, values, cli, swept = [], OmegaConf.create(), [], []
    job_cfg = None
    out = trial.user_attrs.get("output_dir")
    if out and (Path(out) / ".hydra" / "config.yaml").is_file():
        job_cfg = OmegaConf.load(Path(out) / ".hydra" / "config.yaml")
    for line in trial.user_attrs.get("overrides", []):
        key, _, value = line.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra.") or key in ("optuna_trial", "hparams_search"):
            continue
        if key in late_groups:
            cli.append(f"{key}={value}")
            continue
        if key in group_names:
            defaults.append({f"override /{key}": value})
            continue
        swept.append(f"{key}={value}")
        parts = key.split(".")
        index = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        if index is not None and job_cfg is not None:
            key = ".".join(parts[:index])
            new = OmegaConf.select(job_cfg, key)
        else:
            new = OmegaConf.create({"v": _parse(value)}).v
        OmegaConf.update(values, key, new, force_add=True, merge=False)
    if job_cfg is not None:
        job = OmegaConf.to_container(job_cfg, resolve=False)
        assert isinstance(job, dict)  # a job's config is a mapping
        full = {k: v for k, v in job.items() if k not in _NOT_REPLAYED}
        body = full | {"evaluate": True}
        baked = cli
        cli = []
    else:
        body, baked = cast(dict, OmegaConf.to_container(values)), []
    doc = ({"defaults": defaults} if defaults else {}) | body
    where = str(Path(config_dir).resolve()) if config_dir is not None else "<this folder's parent>"
    lines = ["# @package _global_",
             f"# Best trial of Optuna study '{study_name}': trial {trial.number}, value {trial.value:.6f}.",
             f"# Trial overrides: {' '.join(swept) or '(none)'}"]
    if baked:
        lines.append(f"# The trial ran with {' '.join(baked)}: its settings are included below, so do not pass "
                     "it again (it is composed after an experiment and would overwrite the trial's values).")
    lines.append(f"# Rerun and test it: medseg-train --config-dir {where} experiment=best_trial {' '.join(cli)}".rstrip())
    return "\n".join(lines) + "\n" + OmegaConf.to_yaml(OmegaConf.create(doc))


def _parse(value: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(f"x={value}").value()


def write_summary(study: optuna.Study, out_dir: str | Path, config: DictConfig | None = None) -> Path:
    """Write ``experiment/best_trial.yaml``, ``trials.csv``, ``trials.md``, ``history.png`` and ``importance.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = study.trials_dataframe(attrs=("number", "state", "value", "params", "duration", "user_attrs"))
    save_with(out_dir / "trials.csv", lambda p: df.to_csv(p, index=False))
    cols = [c for c in df.columns if c in ("state", "value") or c.startswith("params_")]
    table = df.set_index("number")[cols]
    write_text_atomic(out_dir / "trials.md", f"# Trials of study '{study.study_name}'\n\n"
                      + markdown_table(table, "trial", floatfmt=".5g") + "\n")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        log.warning("study '%s' has no complete trial: no best trial to write", study.study_name)
        return out_dir
    choices = list(config.hydra.runtime.choices.keys()) if config is not None else []
    # runtime.choices lists groups in reverse defaults order: those before "experiment" come after it
    late = set(choices[:choices.index("experiment")]) if "experiment" in choices else set()
    write_text_atomic(out_dir / "experiment" / "best_trial.yaml",
                      best_trial_yaml(study.best_trial, set(choices), study.study_name, late, out_dir))
    _plots(study, out_dir, len(complete))
    log.info("sweep summary in %s (best trial %d: %.5f)", out_dir, study.best_trial.number, study.best_value)
    return out_dir


#: fewer complete trials than this give no meaningful importance (2 trials give every parameter 1/n)
MIN_TRIALS_FOR_IMPORTANCE = 3


def varied_params(study: optuna.Study) -> list[str]:
    """Parameters that took more than one value among the complete trials, or ``[]`` when an importance
    would be noise: too few complete trials, or all their values tie."""
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or len({t.value for t in complete}) < 2:
        return []
    names = sorted({k for t in complete for k in t.params})
    return [k for k in names if len({repr(t.params.get(k)) for t in complete}) > 1]


def _plots(study: optuna.Study, out_dir: Path, n_complete: int) -> None:
    import matplotlib

    matplotlib.use("Agg")  # before optuna's plotting module imports pyplot
    from optuna.visualization import matplotlib as ovm

    from medseg.report.plots import save_figure

    jobs = [("history.png", lambda: ovm.plot_optimization_history(study))]
    varied = varied_params(study)
    if varied:
        # PED-ANOVA needs only numpy (the default fANOVA evaluator needs scikit-learn)
        ev = optuna.importance.PedAnovaImportanceEvaluator()
        jobs.append(("importance.png", lambda: ovm.plot_param_importances(study, evaluator=ev, params=varied)))
    else:
        (out_dir / "importance.png").unlink(missing_ok=True)  # a stale plot from an earlier, smaller study
        log.warning("no parameter importance: it needs >= %d complete trials with differing values and a "
                    "parameter that varied (%d complete)", MIN_TRIALS_FOR_IMPORTANCE, n_complete)
    for name, plot in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning
                ax = plot()
            fig: Any = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure  # type: ignore[attr-defined]  # an array of axes
            fig.tight_layout()
            save_figure(fig, out_dir / name)
        except Exception as exc:  # noqa: BLE001  a plot is a nicety: never lose the sweep over it
            log.warning("could not draw %s: %s", name, exc)
