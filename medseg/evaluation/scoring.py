"""Score labelled cases: per-class metrics of one case (:func:`score_case`, the one function every
entry point scores through) and the per-image / per-class tables of many (:func:`evaluate_cases`,
:func:`evaluate_sources`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from medseg.data.case import Case
from medseg.evaluation.probs import ProbsFn, case_target, foreground_probs
from medseg.evaluation.table import EvaluationTable
from medseg.inference.postprocess import active_rules, postprocess
from medseg.metrics.case import compute_case_metrics, metric_names, resolve_metrics
from medseg.metrics.overlap import METRIC_NAMES
from medseg.metrics.pooled import PooledMetrics
from medseg.tasks import Task

#: ``on_case(case, probs, pred, target)``: sees every scored case
CaseHook = Callable[[Case, torch.Tensor, torch.Tensor, torch.Tensor], None]
#: ``decide(probs)``: one case's probabilities ``(C, *spatial)`` -> its boolean prediction ``(K, *spatial)``
Decide = Callable[[torch.Tensor], torch.Tensor]


def threshold_decision(task: Task, threshold: float | Sequence[float] | None = None,
                       postprocessing: Sequence[dict] | None = None) -> Decide:
    """The decision every scorer applies unless given another: ``task.discretize`` at ``threshold``
    (one, or one per channel; ``None``: the task's), then the per-class connected-component rules ``postprocessing``
    (:func:`medseg.inference.postprocess.postprocess`, as ``medseg-select`` chooses them; ``None``: none)."""
    rules = active_rules(postprocessing)

    def decide(probs: torch.Tensor) -> torch.Tensor:
        pred = task.discretize(probs[None], threshold)[0]
        return postprocess(pred.cpu(), rules) if rules else pred

    return decide


def default_metrics(task: Task, metrics: Any = None) -> tuple[str, ...]:
    """Names of the metrics besides the overlap ones that ``metrics`` (default: ``conf/metrics/default.yaml``:
    surface metrics for every task, AUC, SSIM and topology for binary tasks) scores for ``task``."""
    return tuple(n for n in metric_names(metrics, task.kind) if n not in METRIC_NAMES)


def score_case(
    task: Task, case: Case, probs: torch.Tensor, threshold: float, metrics: Any = None, nsd_tolerance: float = 1.0,
    pred: torch.Tensor | None = None,
) -> tuple[dict[str, np.ndarray], torch.Tensor, torch.Tensor]:
    """Per-class metrics ``{name: (K,)}`` of one labelled case, plus the boolean prediction and target.
    ``metrics``: metric objects, names or ``None`` (defaults), as :func:`medseg.metrics.case.resolve_metrics`
    takes them; ``nsd_tolerance`` applies to names and ``None`` only. ``pred``: the case's decision when it
    is not ``probs > threshold`` (post-processed, per-class thresholds: :func:`threshold_decision`);
    the probability metrics (AUC) still read ``probs``."""
    target = case_target(task, case)
    if target is None:
        raise ValueError(f"case {case.case_id} has no mask to score against")
    if pred is None:
        pred = task.discretize(probs[None], threshold)[0]
    elif tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"case {case.case_id}: prediction shape {tuple(pred.shape)} != target shape "
                         f"{tuple(target.shape)}")
    m = compute_case_metrics(resolve_metrics(metrics, nsd_tolerance), task.kind, pred=pred, target=target,
                             probs=foreground_probs(task, probs), roi=case.roi, spacing=case.spacing)
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
    themselves, such as ``medseg-predict``'s). ``decide``: the decision rule, when it is not
    ``probs > threshold`` (:func:`threshold_decision` with post-processing, a selection's); ``threshold``
    is then only recorded."""

    def __init__(self, task: Task, threshold: float, metrics: Any = None,
                 nsd_tolerance: float = 1.0, split: str = "test", decide: Decide | None = None) -> None:
        self.task, self.threshold, self.nsd_tolerance, self.split = task, threshold, nsd_tolerance, split
        self.decide = decide
        self.metrics = resolve_metrics(metrics, nsd_tolerance)  # once: a config group is instantiated here
        self.rows: dict[str, list[dict]] = {}
        self.class_rows: dict[str, list[dict]] = {}
        # dataset-level metrics over every ROI pixel, as vessel papers report them: binary tasks only
        # (a 29-class 2048x2048 hand-bone case would add ~1 s of histograms for a convention nobody uses there)
        self.pooled: dict[str, PooledMetrics] | None = {} if task.kind == "binary" else None

    def add(self, name: str, case: Case, probs: torch.Tensor,
            pred: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Score ``probs`` of labelled ``case`` as source ``name``; returns ``(pred, target)``. ``pred``:
        the decision already taken for ``probs`` (else the builder's ``decide``, else the threshold)."""
        if pred is None and self.decide is not None:
            pred = self.decide(probs)
        m, pred, target = score_case(task=self.task, case=case, probs=probs, threshold=self.threshold,
                                     metrics=self.metrics, nsd_tolerance=self.nsd_tolerance, pred=pred)
        row, per_class = case_rows(self.task, case.case_id, m)
        self.rows.setdefault(name, []).append(row)
        self.class_rows.setdefault(name, []).extend(per_class)
        if self.pooled is not None:  # counts from the decision itself, AUC from the probabilities
            fg = foreground_probs(self.task, probs).float()
            acc = self.pooled.setdefault(name, PooledMetrics(fg.shape[0], threshold=self.threshold))
            acc.update(fg, target, case.roi, pred=pred)
        return pred, target

    def pooled_table(self, name: str) -> pd.DataFrame | None:
        """Source ``name``'s pooled metrics, one row per class (``None`` where not computed)."""
        if self.pooled is None or name not in self.pooled:
            return None
        values = self.pooled[name].compute()
        return pd.DataFrame(values, index=pd.Index(self.task.class_names, name="class"))

    def tables(self) -> dict[str, EvaluationTable]:
        if not self.rows:
            raise ValueError("no labelled cases to evaluate")
        return {name: EvaluationTable(pd.DataFrame(r).set_index("case_id"), pd.DataFrame(self.class_rows[name]),
                                      split=self.split, threshold=self.threshold, pooled=self.pooled_table(name))
                for name, r in self.rows.items()}


def evaluate_sources(
    sources: Callable[[Case], Mapping[str, torch.Tensor]], task: Task, cases: Sequence[Case], threshold: float,
    metrics: Any = None, nsd_tolerance: float = 1.0, split: str = "test",
    on_case: Callable[[str, Case, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
    decide: Decide | None = None,
) -> dict[str, EvaluationTable]:
    """Score several probability sources on the same labelled ``cases`` in one pass.

    ``sources(case)`` gives ``{name: probabilities}`` (an ensemble computes its folds, members and
    their combination once per case). Returns one :class:`EvaluationTable` per name;
    ``on_case(name, case, probs, pred, target)`` sees every scored case of every source. ``decide``:
    see :class:`TableBuilder`."""
    builder = TableBuilder(task, threshold, metrics, nsd_tolerance, split, decide)
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
    metrics: Any = None, nsd_tolerance: float = 1.0,
    on_case: CaseHook | None = None, split: str = "test", decide: Decide | None = None,
) -> EvaluationTable:
    """Score labelled ``cases`` with one probability source. Per-image values are means over classes
    (``nan`` ignored); ``on_case(case, probs, pred, target)`` sees every case. ``decide``: see
    :class:`TableBuilder`."""
    hook = None if on_case is None else (lambda _name, *args: on_case(*args))
    return evaluate_sources(lambda c: {"model": probs_fn(c)}, task, cases, threshold, metrics, nsd_tolerance,
                            split, hook, decide)["model"]
