"""Negative log-likelihood on a LogSoftmax output, with fixed or stochastic class weights.

:class:`StochasticWeightedNLL` is the loss of Francia et al., "Chaining a U-Net With a Residual
U-Net for Retinal Blood Vessels Segmentation" (IEEE Access 8, 2020): on every training step the
weight of the vessel class is drawn uniformly from ``[1, alpha]`` (background keeps weight 1), which
counters the class imbalance without committing to one weight.

Networks return logits; ``log_softmax(logits, dim=1)`` here is exactly the paper's LogSoftmax output
layer, so the pair (network, loss) is the paper's. A binary task's 1-channel logit ``z`` is read as
the 2-class logits ``(0, z)``: softmax over them equals ``sigmoid(z)``, the binary task's activation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses._convention import class_indices, two_class_logits


class WeightedNLL(nn.Module):
    """NLL of ``log_softmax(logits)`` with fixed class weights (``None``: unweighted)."""

    weight: torch.Tensor | None  # a non-persistent buffer

    def __init__(self, weight: Sequence[float] | None = None) -> None:
        super().__init__()
        w = None if weight is None else torch.as_tensor(list(weight), dtype=torch.float32)
        self.register_buffer("weight", w, persistent=False)

    def class_weights(self, n_classes: int, device: torch.device) -> torch.Tensor | None:
        return None if self.weight is None else self.weight.to(device)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = two_class_logits(logits)
        log_probs = F.log_softmax(logits.float(), dim=1)
        weight = self.class_weights(logits.shape[1], logits.device)
        if weight is not None and weight.numel() != logits.shape[1]:
            raise ValueError(f"NLL weight has {weight.numel()} values for {logits.shape[1]} classes")
        return F.nll_loss(log_probs, class_indices(logits, target), weight=weight)


class StochasticWeightedNLL(WeightedNLL):
    """Francia et al.'s stochastic class-weighted NLL.

    Args:
        alpha: upper bound of the foreground (vessel) weight; each training call draws
            ``w ~ U[1, alpha]`` (``torch.rand``, so it follows the run seed) and weights the classes
            ``(background_weight, w, w, ...)``. In eval mode the expected weight ``(1 + alpha) / 2`` is
            used, so validation losses are comparable between epochs.
        background_weight: weight of class 0.
    """

    def __init__(self, alpha: float = 5.0, background_weight: float = 1.0) -> None:
        super().__init__(None)
        if alpha < 1:
            raise ValueError(f"alpha must be >= 1 (weights are drawn from [1, alpha]), got {alpha}")
        self.alpha, self.background_weight = float(alpha), float(background_weight)
        self.last_weight: float | None = None

    def class_weights(self, n_classes: int, device: torch.device) -> torch.Tensor:
        if self.training:
            w = 1.0 + (self.alpha - 1.0) * float(torch.rand(()))
        else:
            w = (1.0 + self.alpha) / 2
        self.last_weight = w
        weights = torch.full((n_classes,), w, device=device)
        weights[0] = self.background_weight
        return weights
