"""Score labelled cases: per-class metrics of one case (:func:`score_case`, the one function every
entry point scores through) and the per-image / per-class tables of many (:func:`evaluate_cases`,
:func:`evaluate_sources`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from medseg.data.case import Case
from medseg.evaluation.probs import ProbsFn, case_target, foreground_probs
from medseg.evaluation.table import EvaluationTable
from medseg.metrics.image import image_metrics
from medseg.metrics.overlap import overlap_metrics
from medseg.metrics.surface import surface_metrics
from medseg.tasks import Task

#: metrics besides the overlap ones (see medseg.metrics.*)
EXTRA_METRICS = ("auc", "ssim", "hd95", "nsd")

#: ``on_case(case, probs, pred, target)``: sees every scored case
CaseHook = Callable[[Case, torch.Tensor, torch.Tensor, torch.Tensor], None]


def default_metrics(task: Task) -> tuple[str, ...]:
    """Surface metrics for every task; AUC and SSIM, the vessel seeds' metrics, for binary tasks only
    (on 29 hand-bone classes at 2048x2048 they would cost about a minute per image on a CPU core)."""
    return EXTRA_METRICS if task.kind == "binary" else ("hd95", "nsd")


def chosen_metrics(value: Iterable[str] | None) -> tuple[str, ...] | None:
    """A config's metric list: ``None`` -> the task's defaults (:func:`default_metrics`), ``[]`` ->
    overlap metrics only; unknown names are an error."""
    if value is None:
        return None
    unknown = set(value) - set(EXTRA_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {list(EXTRA_METRICS)}")
    return tuple(value)


def score_case(
    task: Task, case: Case, probs: torch.Tensor, threshold: float, metrics: Iterable[str] | None = None,
    nsd_tolerance: float = 1.0,
) -> tuple[dict[str, np.ndarray], torch.Tensor, torch.Tensor]:
    """Per-class metrics ``{name: (K,)}`` of one labelled case, plus the boolean prediction and target."""
    metrics = set(default_metrics(task) if metrics is None else metrics)
    target = case_target(task, case)
    pred = task.discretize(probs[None], threshold)[0]
    roi_t = torch.from_numpy(case.roi) if case.roi is not None else None
    m = {k: v[0].numpy() for k, v in overlap_metrics(pred[None], target[None],
                                                     roi_t[None] if roi_t is not None else None).items()}
    wanted = tuple(k for k in ("auc", "ssim") if k in metrics)
    if wanted:
        m.update(image_metrics(foreground_probs(task, probs).float(), target, roi_t, wanted))
    if metrics & {"hd95", "nsd"}:
        sm = surface_metrics(pred.numpy(), target.numpy(), case.spacing, nsd_tolerance, case.roi)
        m.update({k: v for k, v in sm.items() if k in metrics})
    return m, pred, target


def case_rows(task: Task, case_id: str, m: dict[str, np.ndarray]) -> tuple[dict, list[dict]]:
    """One per-image row (means over classes, ``nan`` ignored) and one row per class."""
    with np.errstate(all="ignore"):
        row = {"case_id": case_id,
               **{k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in m.items()}}
    return row, [{"case_id": case_id, "class": name, **{mk: float(mv[k]) for mk, mv in m.items()}}
                 for k, name in enumerate(task.class_names)]


class TableBuilder:
    """Collects the scores of labelled cases, one :func:`score_case` call each, into one
    :class:`EvaluationTable` per probability source (for loops that compute probabilities
    themselves, such as ``medseg-predict``'s)."""

    def __init__(self, task: Task, threshold: float, metrics: Iterable[str] | None = None,
                 nsd_tolerance: float = 1.0, split: str = "test") -> None:
        self.task, self.threshold, self.nsd_tolerance, self.split = task, threshold, nsd_tolerance, split
        self.metrics = None if metrics is None else tuple(metrics)
        self.rows: dict[str, list[dict]] = {}
        self.class_rows: dict[str, list[dict]] = {}

    def add(self, name: str, case: Case, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score ``probs`` of labelled ``case`` as source ``name``; returns ``(pred, target)``."""
        m, pred, target = score_case(task=self.task, case=case, probs=probs, threshold=self.threshold,
                                     metrics=self.metrics, nsd_tolerance=self.nsd_tolerance)
        row, per_class = case_rows(self.task, case.case_id, m)
        self.rows.setdefault(name, []).append(row)
        self.class_rows.setdefault(name, []).extend(per_class)
        return pred, target

    def tables(self) -> dict[str, EvaluationTable]:
        if not self.rows:
            raise ValueError("no labelled cases to evaluate")
        return {name: EvaluationTable(pd.DataFrame(r).set_index("case_id"), pd.DataFrame(self.class_rows[name]),
                                      split=self.split, threshold=self.threshold) for name, r in self.rows.items()}


def evaluate_sources(
    sources: Callable[[Case], Mapping[str, torch.Tensor]], task: Task, cases: Sequence[Case], threshold: float,
    metrics: Iterable[str] | None = None, nsd_tolerance: float = 1.0, split: str = "test",
    on_case: Callable[[str, Case, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> dict[str, EvaluationTable]:
    """Score several probability sources on the same labelled ``cases`` in one pass.

    ``sources(case)`` gives ``{name: probabilities}`` (an ensemble computes its folds, members and
    their combination once per case). Returns one :class:`EvaluationTable` per name;
    ``on_case(name, case, probs, pred, target)`` sees every scored case of every source."""
    builder = TableBuilder(task, threshold, metrics, nsd_tolerance, split)
    for case in cases:
        if case.mask is None:
            continue
        for name, probs in sources(case).items():
            pred, target = builder.add(name, case, probs)
            if on_case is not None:
                on_case(name, case, probs, pred, target)
    return builder.tables()


def evaluate_cases(
    probs_fn: ProbsFn, task: Task, cases: Sequence[Case], threshold: float,
    metrics: Iterable[str] | None = None, nsd_tolerance: float = 1.0,
    on_case: CaseHook | None = None, split: str = "test",
) -> EvaluationTable:
    """Score labelled ``cases`` with one probability source. Per-image values are means over classes
    (``nan`` ignored); ``on_case(case, probs, pred, target)`` sees every case."""
    hook = None if on_case is None else (lambda _name, *args: on_case(*args))
    return evaluate_sources(lambda c: {"model": probs_fn(c)}, task, cases, threshold, metrics, nsd_tolerance,
                            split, hook)["model"]
