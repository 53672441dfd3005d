"""Pixel-wise losses with config-friendly weights: BCE-with-logits (``pos_weight``) and
cross-entropy (class weights), following the loss convention of :mod:`medseg.tasks`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses._convention import class_indices, two_class_logits


def _weights(values: float | Sequence[float] | None) -> torch.Tensor | None:
    if values is None:
        return None
    return torch.as_tensor([values] if isinstance(values, (int, float)) else list(values), dtype=torch.float32)


class BCEWithLogits(nn.Module):
    """Binary cross-entropy on logits for binary and multi-label tasks.

    Args:
        pos_weight: weight of the positive term, one float for every channel or one per channel
            (e.g. the background/foreground pixel ratio for thin structures).
    """

    pos_weight: torch.Tensor | None  # a non-persistent buffer

    def __init__(self, pos_weight: float | Sequence[float] | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", _weights(pos_weight), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(target):
            raise ValueError("BCEWithLogits takes float multi-hot targets (binary/multi-label tasks); "
                             "use ce for a multi-class task")
        pw = None
        if self.pos_weight is not None:
            if self.pos_weight.numel() not in (1, logits.shape[1]):
                raise ValueError(f"pos_weight has {self.pos_weight.numel()} values for {logits.shape[1]} channels")
            pw = self.pos_weight.view(1, -1, *([1] * (logits.ndim - 2)))
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)


class CrossEntropy(nn.Module):
    """Softmax cross-entropy for multi-class tasks (and binary tasks, reading a 1-channel logit ``z``
    as the class pair ``(0, z)``, see :func:`~medseg.losses._convention.two_class_logits`).

    Args:
        weight: one weight per class (background first), or ``None``.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.
    """

    weight: torch.Tensor | None  # a non-persistent buffer

    def __init__(self, weight: Sequence[float] | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", _weights(weight), persistent=False)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = two_class_logits(logits)
        if self.weight is not None and self.weight.numel() != logits.shape[1]:
            raise ValueError(f"cross-entropy weight has {self.weight.numel()} values for {logits.shape[1]} classes")
        return F.cross_entropy(logits, class_indices(logits, target), weight=self.weight,
                               label_smoothing=self.label_smoothing)
