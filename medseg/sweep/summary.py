"""Sweep summary: the best trial as a ready-to-run experiment YAML, a table of trials, and Optuna's
optimisation-history and parameter-importance plots (matplotlib backend; no plotly needed)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from medseg.report.tables import markdown_table
from medseg.utils.io import save_with, write_text_atomic

log = logging.getLogger(__name__)


def best_trial_yaml(trial: optuna.trial.FrozenTrial, group_names: set[str], study_name: str,
                    late_groups: set[str] = frozenset()) -> str:
    """An experiment config (``# @package _global_``) that reruns ``trial``: config-group choices become
    ``override /group: option`` defaults, every other value is set in place. A value inside a list
    (``data.augment.transforms.0.p``) is written as the whole list, read from the trial's saved config.
    Groups listed after ``experiment`` in the defaults (``late_groups``, e.g. ``debug``) cannot be
    overridden from an experiment: the header names them for the command line."""
    defaults, values, cli = [], OmegaConf.create(), []
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
        parts = key.split(".")
        index = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        if index is not None and job_cfg is not None:
            key = ".".join(parts[:index])
            new = OmegaConf.select(job_cfg, key)
        else:
            new = OmegaConf.create({"v": _parse(value)}).v
        OmegaConf.update(values, key, new, force_add=True, merge=False)
    body = OmegaConf.to_container(values)
    doc = ({"defaults": defaults} if defaults else {}) | body
    header = (f"# @package _global_\n# Best trial of Optuna study '{study_name}': trial {trial.number}, "
              f"value {trial.value:.6f}.\n# Rerun and test it: medseg-train --config-dir <this folder's parent> "
              f"experiment=best_trial {' '.join(cli)}".rstrip() + "\n")
    return header + OmegaConf.to_yaml(OmegaConf.create(doc))


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
                      best_trial_yaml(study.best_trial, set(choices), study.study_name, late))
    _plots(study, out_dir, len(complete))
    log.info("sweep summary in %s (best trial %d: %.5f)", out_dir, study.best_trial.number, study.best_value)
    return out_dir


def _plots(study: optuna.Study, out_dir: Path, n_complete: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    jobs = [("history.png", lambda: ovm.plot_optimization_history(study))]
    if n_complete >= 2 and study.best_trial.params:
        # PED-ANOVA needs only numpy (the default fANOVA evaluator needs scikit-learn)
        ev = optuna.importance.PedAnovaImportanceEvaluator()
        jobs.append(("importance.png", lambda: ovm.plot_param_importances(study, evaluator=ev)))
    for name, plot in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning
                ax = plot()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.tight_layout()
            save_with(out_dir / name, lambda p, fig=fig: fig.savefig(p, dpi=110, format="png"))
            plt.close(fig)
        except Exception as exc:  # noqa: BLE001  a plot is a nicety: never lose the sweep over it
            log.warning("could not draw %s: %s", name, exc)
