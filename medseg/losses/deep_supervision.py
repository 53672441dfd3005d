"""Deep supervision: one loss over a network's main and auxiliary outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class DeepSupervisionLoss(nn.Module):
    """``sum_i w_i * loss(output_i, target)`` over the outputs of a network that returns a tuple
    ``(main, aux_1, aux_2, ...)`` in training; a single tensor passes straight to ``loss``.

    Auxiliary logits of another spatial size are resized (linear interpolation) to the main
    output's size, so any target handling done for the main output applies to all.

    Args:
        loss: the wrapped ``(logits, target) -> scalar`` loss.
        weights: one weight per output; ``None``: ``1, 1/2, 1/4, ...`` normalised to sum 1
            (nnU-Net's rule).
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.weights = None if weights is None else [float(w) for w in weights]

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if isinstance(logits, torch.Tensor):
            return self.loss(logits, target)
        outputs = list(logits)
        weights = self.weights
        if weights is None:
            raw = [0.5**i for i in range(len(outputs))]
            weights = [w / sum(raw) for w in raw]
        if len(weights) != len(outputs):
            raise ValueError(f"deep supervision has {len(weights)} weights for {len(outputs)} outputs")
        size = outputs[0].shape[2:]
        total = outputs[0].new_zeros(())
        for w, out in zip(weights, outputs):
            if w == 0:
                continue
            if out.shape[2:] != size:
                mode = "bilinear" if out.ndim == 4 else "trilinear"
                out = F.interpolate(out, size=size, mode=mode, align_corners=False)
            total = total + w * self.loss(out, target)
        return total
