"""A weighted sum of losses from config (the hand-bone predecessor project's BCE/Dice/IoU rates, the brain-tumour one's
``dice + 1 * focal``). Every term follows the loss convention of :mod:`medseg.tasks`.

Example::

    loss:
      _target_: medseg.losses.compound.WeightedSum
      terms:
        bce:  {weight: 1.0, loss: {_target_: torch.nn.BCEWithLogitsLoss}}
        dice: {weight: 1.0, loss: {_target_: monai.losses.DiceLoss, sigmoid: true}}
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class WeightedSum(nn.Module):
    """``sum_i weight_i * loss_i(logits, target)``; the last call's terms are kept in ``last_terms``."""

    def __init__(self, terms: Mapping[str, Mapping]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("WeightedSum needs at least one term")
        self.losses = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for name, spec in terms.items():
            if "loss" not in spec:
                raise ValueError(f"loss term {name!r} needs a 'loss' entry")
            self.losses[name] = spec["loss"]
            self.weights[name] = float(spec.get("weight", 1.0))
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        self.last_terms = {}
        for name, loss in self.losses.items():
            w = self.weights[name]
            if w == 0:
                continue
            value = loss(logits, target)
            self.last_terms[name] = value.detach()
            total = total + w * value
        return total
