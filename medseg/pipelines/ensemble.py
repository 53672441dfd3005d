"""Score fold checkpoints, k-fold ensembles and ensembles of experiments side by side on one split.

A *member* is a run folder (one checkpoint) or a k-fold folder (``fold_<k>/`` run folders; the
member's prediction is the mean of its folds). Every fold, every member and the ensemble of the
members are scored on the same cases in one pass, and the predecessor-style table (each model's Dice, the
ensemble's) is written as ``leaderboard.csv`` and ``report.md``, with a per-model folder of
``per_image.csv`` / ``per_class.csv`` that ``medseg-report`` reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf, open_dict

from medseg.errors import DataError
from medseg.evaluation import ProbsFn, default_metrics, evaluate_sources, model_probs
from medseg.inference.ensemble import combine, fit_weights
from medseg.metrics.case import CaseMetric
from medseg.pipelines.build import build_datamodule
from medseg.pipelines.eval import load_model, load_run_config, run_source
from medseg.report.ensemble import ensemble_report
from medseg.report.tables import leaderboard
from medseg.utils.io import save_with, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class Model:
    """One checkpoint and the data it reads (cases are matched across data configs by id)."""

    name: str
    run_dir: Path
    probs: ProbsFn
    data_key: str
    source: dict = field(default_factory=dict)  # EvaluationTable.source: run folder, checkpoint, TTA


@dataclass
class Member:
    name: str
    path: Path
    kind: str  # "model" (one run) or "kfold" (mean of its folds)
    models: list[Model] = field(default_factory=list)


def fold_dirs(path: str | Path) -> list[Path]:
    """The finished fold run folders of a k-fold folder (``fold_<k>/`` with ``results.json``)."""
    return sorted((p for p in Path(path).glob("fold_*") if (p / "results.json").is_file()),
                  key=lambda p: int(p.name.split("_")[-1]))


def _data_key(run_cfg) -> str:
    data = OmegaConf.to_container(run_cfg.data, resolve=True)
    assert isinstance(data, dict)  # the data group is a mapping
    data.pop("fold", None)
    return OmegaConf.to_yaml(OmegaConf.create(data))


def load_members(paths: Sequence[str | Path], ckpt: str = "best", overrides=None, tta: bool | dict = False):
    """Load every member's checkpoints. Returns ``(members, datamodules by data key, task)``."""
    members: list[Member] = []
    dms: dict[str, Any] = {}  # SegmentationDataModule by data key
    task = None
    for p in paths:
        p = Path(p).expanduser()
        folds = fold_dirs(p)
        name = p.name if p.name not in {m.name for m in members} else f"{p.name}#{len(members) + 1}"
        member = Member(name, p, "kfold" if folds else "model")
        for rd in folds or [p]:
            run_cfg = load_run_config(rd, overrides)
            with open_dict(run_cfg):
                run_cfg.data.fold = None  # the test split does not depend on the fold
            key = _data_key(run_cfg)
            if key not in dms:
                dms[key] = build_datamodule(run_cfg)
            module, ckpt_path = load_model(run_cfg, dms[key], rd, ckpt)
            if task is None:
                task = module.task
            elif (module.task.kind, module.task.class_names) != (task.kind, task.class_names):
                raise DataError(f"{rd}: task {module.task.kind} {module.task.class_names} differs from the "
                                f"first member's {task.kind} {task.class_names}; members must segment the same classes")
            model_name = f"{member.name}/{rd.name}" if folds else member.name
            source = {**run_source(rd, ckpt_path), **({"tta": _plain(tta)} if tta else {})}
            member.models.append(Model(model_name, rd, model_probs(module, tta), key, source))
        members.append(member)
    if not members:
        raise ValueError("an ensemble needs at least one member (run folder or k-fold folder)")
    return members, dms, task


def oof_weights(members: list[Member], dm, task) -> np.ndarray:
    """Weights fitted on the out-of-fold records (``fold_<k>/oof/cases/*.npz``) of k-fold members."""
    from medseg.select.oof import OOF_SUBDIR, load_oof_case, logits_to_probs

    by_member = []
    for mem in members:
        if mem.kind != "kfold":
            raise DataError(f"{mem.path}: weights=oof needs k-fold members (folders of fold_<k>/ runs)")
        files = {f.stem: f for m in mem.models for f in sorted(m.run_dir.joinpath(*OOF_SUBDIR).glob("*.npz"))}
        if not files:
            raise DataError(f"{mem.path}: no out-of-fold records (fold_<k>/oof/cases); rerun medseg-kfold")
        by_member.append(files)
    shared = sorted(set.intersection(*(set(p) for p in by_member)))
    if not shared:
        raise DataError("the members' out-of-fold predictions share no cases")
    records = [[load_oof_case(p[c]) for c in shared] for p in by_member]
    if any(r.logits.shape != records[0][i].logits.shape for rs in records for i, r in enumerate(rs)):
        raise DataError("the members' out-of-fold probabilities have different sizes (oof_probs_max_size differs)")
    member_probs = [[torch.from_numpy(logits_to_probs(task.kind, r.logits)) for r in rs] for rs in records]
    targets = [torch.from_numpy(r.target) for r in records[0]]
    rois = [torch.from_numpy(r.roi) if r.roi is not None else None for r in records[0]]
    return fit_weights(member_probs, targets, task, rois)


def evaluate_ensemble(
    members: Sequence[str | Path], out_dir: str | Path, split: str = "test", method: str = "mean",
    weights: str | Sequence[float] | None = None, ckpt: str = "best", tta: bool | dict = False,
    threshold: float | None = None, metrics: Sequence[str | CaseMetric] | None = None, nsd_tolerance: float = 1.0,
    overrides=None,
) -> pd.DataFrame:
    """Score each fold, each member and the ensemble of members on ``split``; write the leaderboard.

    Args:
        members: run folders and/or k-fold folders.
        method: ``mean``, ``weighted`` or ``vote`` across members (folds of a member: ``mean``, or
            ``vote`` when ``method=vote``).
        weights: ``None`` (equal), a list (one per member) or ``"oof"`` (fitted on out-of-fold
            predictions, Caruana selection); used by ``mean`` / ``weighted``.
    Returns the leaderboard (one row per scored model).
    """
    out_dir = Path(out_dir)
    members_, dms, task = load_members(members, ckpt, overrides, tta)
    ref_dm = next(iter(dms.values()))
    thr = task.threshold if threshold is None else float(threshold)
    w = member_weights(members_, ref_dm, task, method, weights)
    check_shared_cases(members_, dms, split)
    kinds = model_kinds(members_, method)
    sources = ensemble_sources(members_, dms, split, task, thr, method, w)
    try:
        tables = evaluate_sources(sources, task, ref_dm.cases[split], thr, metrics, nsd_tolerance, split)
    except ValueError as exc:
        raise ValueError(f"split '{split}' has no labelled cases to evaluate") from exc
    tables = {name: tables[name] for name in kinds}  # leaderboard order
    for name, table in tables.items():
        table.source = model_source(name, members_, method, w)
        table.save(out_dir / "models" / name.replace("/", "_"))
    scored = default_metrics(task, metrics)
    board = leaderboard({k: t.per_image for k, t in tables.items()}, kinds,
                        metrics=("dice", "iou", *[m for m in scored if m != "dice"]))
    save_with(out_dir / "leaderboard.csv", lambda p: board.to_csv(p, float_format="%.6f"))
    if w is not None:
        write_json_atomic(out_dir / "weights.json", dict(zip([m.name for m in members_], map(float, w))))
    write_text_atomic(out_dir / "report.md", ensemble_report(board, tables, members_, split, method, w))
    return board


def _plain(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def member_weights(members: list[Member], dm, task, method: str,
                   weights: str | Sequence[float] | None) -> np.ndarray | None:
    """The across-member weights: ``None`` (equal), a given list, or fitted on out-of-fold records."""
    if weights == "oof":
        w = oof_weights(members, dm, task)
    elif weights is None:
        if method == "weighted":
            raise ValueError("method=weighted needs weights: a list, or oof")
        return None
    else:
        w = np.asarray(list(weights), dtype=float)
    log.info("ensemble weights: %s", dict(zip([m.name for m in members], np.round(w, 4))))
    return w


def check_shared_cases(members: list[Member], dms: dict, split: str) -> None:
    """Every model's data must hold the first member's ``split`` cases (matched by id)."""
    wanted = {c.case_id for c in next(iter(dms.values())).cases[split]}
    for mem in members:
        for m in mem.models:
            missing = wanted - {c.case_id for c in dms[m.data_key].cases[split]}
            if missing:
                raise DataError(f"{m.run_dir}: its '{split}' split lacks {len(missing)} case(s) of the first "
                                f"member's (e.g. {min(missing)}); ensemble members must share the test cases")


def model_kinds(members: list[Member], method: str) -> dict[str, str]:
    """Every scored model's leaderboard kind: ``fold``, ``<k>-fold ensemble``, ``model``, ``ensemble (...)``."""
    kinds: dict[str, str] = {}
    for mem in members:
        if mem.kind == "kfold":
            kinds.update({m.name: "fold" for m in mem.models})
        kinds[mem.name] = f"{len(mem.models)}-fold ensemble" if mem.kind == "kfold" else "model"
    if len(members) > 1:
        kinds["ensemble"] = f"ensemble ({method})"
    return kinds


def ensemble_sources(members: list[Member], dms: dict, split: str, task, thr: float, method: str,
                     w: np.ndarray | None):
    """``case -> {model name: probabilities}``: each fold, each member (mean or vote of its folds) and
    the ensemble of members, every network run once per case."""
    index = {key: {c.case_id: c for c in dm.cases[split]} for key, dm in dms.items()}
    fold_method = "vote" if method == "vote" else "mean"

    def sources(case) -> dict[str, torch.Tensor]:
        probs: dict[str, torch.Tensor] = {}
        for mem in members:
            base = [m.probs(index[m.data_key][case.case_id]) for m in mem.models]
            if mem.kind == "kfold":
                probs.update({m.name: p for m, p in zip(mem.models, base)})
            probs[mem.name] = combine(base, fold_method, task=task, threshold=thr) if len(base) > 1 else base[0]
        if len(members) > 1:
            probs["ensemble"] = combine([probs[m.name] for m in members], fold_method, weights=w, task=task,
                                        threshold=thr)
        return probs
    return sources


def model_source(name: str, members: list[Member], method: str, w: np.ndarray | None) -> dict:
    """The identity of one scored model (``EvaluationTable.source``): a single run's checkpoint, or
    the runs a combination is made of and how."""
    for mem in members:
        for m in mem.models:
            if m.name == name and (mem.kind == "kfold" or len(mem.models) == 1):
                return dict(m.source)
    runs = [m for mem in members for m in mem.models] if name == "ensemble" else \
        next(mem.models for mem in members if mem.name == name)
    how = {"combine": method, "weights": None if w is None else [float(x) for x in w]} if name == "ensemble" \
        else {"combine": "vote" if method == "vote" else "mean"}
    return {"runs": sorted(r.source["runs"][0] for r in runs), "checkpoints": sorted(r.source["checkpoint"] for r in runs),
            **({"tta": runs[0].source["tta"]} if "tta" in runs[0].source else {}), **how}
