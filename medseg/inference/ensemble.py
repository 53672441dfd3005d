"""Combine the probability maps of several models: mean, weighted mean, majority vote; fit weights on OOF.

Every rule returns a probability-like map ``(C, *spatial)`` that the task's usual decision rule turns
into a mask, so an ensemble is evaluated exactly like one model:

* ``mean``: the (weighted) mean of the members' probabilities.
* ``vote``: each member's mask votes; binary / multi-label channels hold the fraction of members
  voting foreground (``> 0.5`` = a strict majority), multi-class channels the fraction voting each
  class (``argmax`` = the plurality label, ties to the lower class index).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medseg.metrics.overlap import confusion, metrics_from_confusion
from medseg.tasks import Task

METHODS = ("mean", "weighted", "vote")


def combine(
    probs: Sequence[torch.Tensor], method: str = "mean", weights: Sequence[float] | np.ndarray | None = None,
    task: Task | None = None, threshold: float | None = None,
) -> torch.Tensor:
    """Combine members' probabilities ``[(C, *spatial), ...]`` (see module docstring).

    ``weights`` (non-negative, any scale) apply to ``mean``/``weighted``; ``vote`` needs ``task``."""
    if not probs:
        raise ValueError("an ensemble needs at least one member")
    if method not in METHODS:
        raise ValueError(f"ensemble method must be one of {METHODS}, got {method!r}")
    if method == "vote":
        if task is None:
            raise ValueError("majority vote needs the task (to turn probabilities into masks)")
        votes = []
        for p in probs:
            if task.kind == "multiclass":
                votes.append(torch.nn.functional.one_hot(p.argmax(0), p.shape[0]).movedim(-1, 0).float())
            else:
                votes.append(task.discretize(p[None], threshold)[0].float())
        return torch.stack(votes).mean(0)
    w = torch.ones(len(probs), dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (len(probs),) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"ensemble weights must be {len(probs)} non-negative numbers with a positive sum, got {weights}")
    shares = (w / w.sum()).tolist()
    out = probs[0].float() * shares[0]
    for p, wi in zip(probs[1:], shares[1:]):
        out = out + p.float() * wi
    return out


def fit_weights(
    member_probs: Sequence[Sequence[torch.Tensor]], targets: Sequence[torch.Tensor], task: Task,
    rois: Sequence[torch.Tensor | None] | None = None, rounds: int = 20,
) -> np.ndarray:
    """Ensemble weights maximising mean Dice on out-of-fold cases (Caruana et al. 2004: greedy forward
    selection with replacement; weight = how often a member was picked).

    Args:
        member_probs: ``member_probs[m][i]`` = member ``m``'s probabilities ``(C, *spatial)`` on case ``i``.
        targets: boolean ``(K, *spatial)`` per case.
        rounds: selection steps; more rounds give finer weights.
    Returns normalised weights, one per member.
    """
    n_members, n_cases = len(member_probs), len(targets)
    if n_members == 0 or n_cases == 0 or any(len(mp) != n_cases for mp in member_probs):
        raise ValueError("fit_weights needs every member's probabilities on the same, non-empty set of cases")
    rois = list(rois) if rois is not None else [None] * n_cases

    def score(counts: np.ndarray) -> float:
        total = 0.0
        for i in range(n_cases):
            p = combine([member_probs[m][i] for m in range(n_members)], "mean", counts + 1e-12)
            pred = task.discretize(p[None])
            roi = rois[i]
            r = roi[None] if roi is not None else None
            total += float(metrics_from_confusion(*confusion(pred, targets[i][None], r))["dice"].mean())
        return total / n_cases

    counts = np.zeros(n_members)
    best_score = -1.0
    for _ in range(rounds):
        trials = []
        for m in range(n_members):
            c = counts.copy()
            c[m] += 1
            trials.append(score(c))
        m = int(np.argmax(trials))
        if trials[m] < best_score - 1e-12 and counts.sum() > 0:
            break
        counts[m] += 1
        best_score = max(best_score, trials[m])
    return counts / counts.sum()
