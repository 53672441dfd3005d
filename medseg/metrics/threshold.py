"""The decision threshold that maximises mean per-image Dice on validation cases (``eval.threshold: auto``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from medseg.metrics.overlap import confusion, metrics_from_confusion

DEFAULT_GRID = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))


def best_threshold(
    cases: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    grid: Sequence[float] = DEFAULT_GRID,
    after: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """Search ``grid`` for the threshold with the highest mean per-image, per-class Dice.

    ``cases`` yields ``(foreground probabilities (K, *spatial), boolean target (K, *spatial), roi)``.
    ``after``: what the decision does to the thresholded ``(K, *spatial)`` map before it is scored
    (connected-component post-processing), so the threshold is chosen for the masks that will be kept.
    Returns ``(threshold, mean Dice at that threshold)``; ties go to the threshold nearest 0.5.
    """
    grid_t = torch.tensor(list(grid), dtype=torch.float64)
    total, n = torch.zeros(len(grid_t), dtype=torch.float64), 0
    for probs, target, roi in cases:
        for i, thr in enumerate(grid_t):
            pred = (probs > thr) if after is None else after(probs > thr)
            pred = pred[None]
            r = roi[None] if roi is not None else None
            total[i] += metrics_from_confusion(*confusion(pred, target[None], r))["dice"].mean()
        n += 1
    if n == 0:
        raise ValueError("no labelled cases to choose a threshold on")
    mean = (total / n).numpy()
    best = max(range(len(mean)), key=lambda i: (round(float(mean[i]), 12), -abs(float(grid_t[i]) - 0.5)))
    return float(grid_t[best]), float(mean[best])
