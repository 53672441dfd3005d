"""Evaluate a model on a split (:func:`evaluate_split`, shared by ``medseg-train``, ``medseg-eval``,
``medseg-kfold`` and ``medseg-select``), and the checkpoint of an earlier run (:func:`evaluate_run`).

Each reads straight down: probability source -> threshold -> :func:`medseg.evaluation.evaluate_cases`
(every case through :func:`medseg.evaluation.score_case`) -> :class:`EvaluationTable` saved ->
:func:`medseg.report.run.write_run_report`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from medseg.data.case import Case
from medseg.data.datamodule import SegmentationDataModule
from medseg.errors import CheckpointError, ConfigError, DataError
from medseg.evaluation import (
    PREDICTIONS,
    EvaluationTable,
    ProbsFn,
    data_notes,
    evaluate_cases,
    model_probs,
    resolve_threshold,
    roi_note,
    save_prediction,
    save_probs,
    threshold_decision,
)
from medseg.evaluation.scoring import CaseHook
from medseg.inference.postprocess import RULES, active_rules, check_rules, describe_rules
from medseg.inference.selected import Selection
from medseg.metrics import metrics_from_config
from medseg.module import SegmentationModule
from medseg.pipelines.build import build_datamodule, build_module, load_weights
from medseg.report.run import write_run_report
from medseg.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def resolve_checkpoint(run_dir: Path, ckpt: str) -> Path:
    """``best`` (the checkpoint the run keeps: its best epoch by the monitor, or its final weights where
    ``callbacks.model_checkpoint.monitor`` is null, e.g. ``experiment=drive_unet``), ``last``, or a path."""
    folder = run_dir / "checkpoints"
    if ckpt == "last":
        path = folder / "last.ckpt"
    elif ckpt == "best":
        cands = sorted(p for p in folder.glob("*.ckpt") if p.name != "last.ckpt") if folder.is_dir() else []
        if not cands:
            raise CheckpointError(f"{folder}: no best checkpoint found (did the run finish an epoch?)")
        path = cands[-1] if len(cands) == 1 else max(cands, key=lambda p: p.stat().st_mtime)
    else:
        path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def load_run_config(run_dir: str | Path, overrides=None, config: str | Path | None = None) -> DictConfig:
    """The saved config of a run folder (``.hydra/config.yaml``), or the file ``config`` (a checkpoint
    plus its config from elsewhere), with ``overrides`` merged in."""
    run_dir = Path(run_dir).expanduser()
    saved = Path(config).expanduser() if config else run_dir / ".hydra" / "config.yaml"
    if config and not saved.is_file():
        raise DataError(f"{saved}: config file not found")
    if not saved.is_file():
        raise DataError(f"{run_dir}: not a medseg run folder (no .hydra/config.yaml)")
    run_cfg = OmegaConf.load(saved)
    if overrides:
        run_cfg = OmegaConf.merge(run_cfg, overrides)
    if not isinstance(run_cfg, DictConfig):
        raise DataError(f"{saved}: not a run config (a YAML list, not a mapping)")
    return run_cfg


def load_model(run_cfg: DictConfig, dm, run_dir: str | Path, ckpt: str = "best") -> tuple[SegmentationModule, Path]:
    """The run's network with the weights of checkpoint ``ckpt`` (``best``, ``last`` or a path)."""
    module = build_module(run_cfg, dm)
    path = resolve_checkpoint(Path(run_dir).expanduser(), str(ckpt))
    load_weights(module, path)
    module.eval()
    return module, path


def saving_hook(threshold: float, probs_dir: str | Path | None = None, probs_max_size: int | None = None,
                predictions_dir: str | Path | None = None, on_case: CaseHook | None = None) -> CaseHook:
    """An ``on_case`` hook saving each scored case's probabilities and/or boolean prediction, then
    calling ``on_case``."""
    def each_case(case: Case, probs: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> None:
        if probs_dir is not None:
            save_probs(Path(probs_dir) / f"{case.case_id}.npy", probs, probs_max_size)
        if predictions_dir is not None:
            save_prediction(Path(predictions_dir) / f"{case.case_id}.npz", pred, threshold)
        if on_case is not None:
            on_case(case, probs, pred, target)
    return each_case


def score_split(fn: ProbsFn, module: SegmentationModule, dm: SegmentationDataModule, split: str,
                threshold: float | str | None = None, metrics: Iterable[Any] | None = None,
                nsd_tolerance: float = 1.0, hook: dict[str, Any] | None = None,
                source: dict[str, Any] | None = None,
                postprocessing: list[dict] | None = None) -> EvaluationTable:
    """Score every labelled case of ``split``: the table with its threshold, ROI and data notes.
    ``hook``: keyword arguments of :func:`saving_hook` (what to save per case); ``postprocessing``:
    per-class connected-component rules applied after the threshold (:func:`threshold_decision`)."""
    rules = active_rules(postprocessing)  # all none: the table is the plain threshold's
    thr, thr_note = resolve_threshold(module.task, fn, dm.cases["val"], threshold, rules)
    try:
        table = evaluate_cases(fn, module.task, dm.cases[split], thr, metrics, nsd_tolerance,
                               saving_hook(thr, **(hook or {})), split=split,
                               decide=threshold_decision(module.task, thr, rules))
    except ValueError as exc:
        raise ValueError(f"split '{split}' has no labelled cases to evaluate") from exc
    if rules:
        thr_note = ((f"{thr_note} " if thr_note else "")
                    + f"Post-processing after the threshold: {describe_rules(module.task.class_names, rules)}.")
    table.threshold_note, table.roi_note, table.data_notes = thr_note, roi_note(dm, split), data_notes(dm)
    table.source = {**(source or {}), **({"postprocessing": rules} if rules else {})}
    return table


def evaluate_split(
    module: SegmentationModule,
    dm: SegmentationDataModule,
    out_dir: str | Path,
    split: str = "test",
    overlays: bool = True,
    baseline: str | None = None,
    title: str = "medseg evaluation",
    *,
    threshold: float | str | None = None,
    tta: bool | Mapping = False,
    metrics: Iterable[Any] | None = None,
    nsd_tolerance: float = 1.0,
    probs_fn: ProbsFn | None = None,
    probs_dir: str | Path | None = None,
    probs_max_size: int | None = None,
    predictions_dir: str | Path | None = None,
    on_case: CaseHook | None = None,
    source: dict[str, Any] | None = None,
    postprocessing: list[dict] | None = None,
) -> EvaluationTable:
    """Score every case of ``split``; write ``per_image.csv``, ``per_class.csv``, ``evaluation.json``,
    ``report.md`` and ``overlays/`` under ``out_dir``. Returns the table.

    Args:
        threshold: decision threshold for binary / multi-label tasks: a number, ``None`` (the task's,
            0.5 by default) or ``"auto"`` (the one maximising mean Dice on the ``val`` split; reported).
        tta: test-time augmentation (see :func:`medseg.inference.tta.tta_probs`).
        metrics: extra metrics besides the overlap ones: any of ``auc, ssim, hd95, nsd``; ``None``:
            :func:`medseg.evaluation.default_metrics` of the task.
        nsd_tolerance: surface Dice tolerance in mm (pixels when cases have no spacing).
        probs_fn: probability source replacing ``module`` (an ensemble); ``module.task`` still applies.
        probs_dir: also save every case's probabilities there as float16 ``<case_id>.npy``.
        probs_max_size: downsample saved probabilities to at most this many pixels per side.
        predictions_dir: also save every scored case's boolean prediction there as
            ``<case_id>.npz`` (:func:`medseg.evaluation.save_prediction`; ``medseg-view`` shows them).
        on_case: also called with ``(case, probs, pred, target)`` for every scored case (medseg-kfold
            writes its out-of-fold records with it: :func:`medseg.select.oof.oof_writer`).
        source: what is scored (run folder, checkpoint...), saved in ``evaluation.json``.
        postprocessing: one connected-component rule per class applied after the threshold
            (:func:`medseg.inference.postprocess.check_rules`; as ``medseg-select`` chooses them), e.g.
            ``[{"rule": "min_size", "min_size": 20}]``; the table, saved predictions, pooled counts and
            overlays all score the post-processed masks (the pooled AUC reads the probabilities).
    """
    fn = probs_fn or model_probs(module, tta)
    rules = check_rules(postprocessing, module.task.class_names) if postprocessing is not None else None
    hook = {"probs_dir": probs_dir, "probs_max_size": probs_max_size, "predictions_dir": predictions_dir,
            "on_case": on_case}
    table = score_split(fn, module, dm, split, threshold, metrics, nsd_tolerance, hook,
                        {**(source or {}), **({"tta": _plain(tta)} if tta else {})}, rules)
    table.save(out_dir)
    write_run_report(out_dir, table, module.task, dm, fn, title, overlays, baseline,
                     decide=threshold_decision(module.task, table.threshold, rules))
    return table


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def evaluate_run(cfg: DictConfig, out_dir: str | Path) -> Path:
    """``medseg-eval``: score checkpoint ``cfg.ckpt`` of run ``cfg.run_dir`` on ``cfg.split`` into ``out_dir``."""
    run_dir = Path(cfg.run_dir).expanduser()
    run_cfg = load_run_config(run_dir, cfg.get("overrides"), cfg.get("config"))
    dm = build_datamodule(run_cfg)
    module, ckpt = load_model(run_cfg, dm, run_dir, str(cfg.ckpt))
    out = Path(out_dir)
    table = evaluate_split(
        module, dm, out, split=cfg.split, baseline=dm.baseline,
        title=f"{run_cfg.task_name}: {cfg.split} report ({ckpt.name})",
        threshold=cfg.get("threshold"), tta=cfg.get("tta") or False,
        metrics=metrics_from_config(cfg), nsd_tolerance=cfg.get("nsd_tolerance", 1.0),
        predictions_dir=out / PREDICTIONS if cfg.get("save_predictions", True) else None,
        source=run_source(run_dir, ckpt),
        postprocessing=postprocessing_rules(cfg.get("postprocessing"), module.task.class_names),
    )
    write_json_atomic(out / "results.json", {**table.summary(), "checkpoint": str(ckpt)})
    return out


def postprocessing_rules(value: Any, class_names: list[str]) -> list[dict] | None:
    """``medseg-eval postprocessing=``: ``null``; a rule (``largest``, ``{rule: min_size, min_size: 20}``)
    for every class; one rule per class (a list); or a ``selection.json`` of ``medseg-select`` (or its
    folder), whose per-class rules are taken."""
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, str) and value not in RULES:
        path = Path(value).expanduser()
        path = path / "selection.json" if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(f"postprocessing={value}: neither a rule (none, largest, {{rule: min_size, "
                              "min_size: N}) nor a selection.json of medseg-select")
        sel = Selection.load(path)
        if list(sel.class_names) != list(class_names):
            raise ConfigError(f"postprocessing={path}: made for classes {sel.class_names}, the run segments "
                              f"{list(class_names)}")
        return sel.rules
    return check_rules(value, class_names, "postprocessing")


def run_source(run_dir: str | Path, ckpt: str | Path) -> dict[str, Any]:
    """The identity of one checkpoint of one run (``EvaluationTable.source``)."""
    return {"runs": [str(Path(run_dir).expanduser().resolve())], "checkpoint": Path(ckpt).name}
