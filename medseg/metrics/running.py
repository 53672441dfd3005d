"""Epoch-level metrics that reduce correctly across DDP ranks (torchmetrics states, ``sum`` reduction)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from medseg.metrics.overlap import confusion, metrics_from_confusion


class MeanPerImageDice(Metric):
    """Mean over images of the per-image Dice, per class (the number the reports tabulate).

    States are sums and counts, so the value after a DDP all-reduce equals the single-process
    value over the whole validation set.
    """

    full_state_update = False
    dice_sum: torch.Tensor  # states registered by add_state (typed here for mypy)
    count: torch.Tensor

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.add_state("dice_sum", default=torch.zeros(n_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None) -> None:
        dice = metrics_from_confusion(*confusion(pred, target, roi))["dice"]  # (B, K)
        self.dice_sum += dice.sum(0).to(self.dice_sum)
        self.count += dice.shape[0]

    def compute(self) -> torch.Tensor:
        return self.dice_sum / self.count.clamp(min=1)
