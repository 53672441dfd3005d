"""Region (overlap) losses: soft Dice, IoU/Jaccard, Tversky and focal, for every task type.

Each wraps the MONAI loss and picks its activation from the target, following the loss convention of
:mod:`medseg.tasks`: float multi-hot targets (binary, multi-label) -> sigmoid per channel; integer
class-index targets (multi-class) -> softmax over classes with the target one-hot encoded. So one
config (``loss=dice``) serves every task. Extra keyword arguments go to the MONAI loss
(``include_background``, ``batch``, ``smooth_nr``, ``smooth_dr``, ``weight``...).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.losses import DiceLoss, FocalLoss, TverskyLoss
from torch import nn

from medseg.losses._convention import is_index_target


class _SigmoidOrSoftmax(nn.Module):
    """One MONAI loss built twice: sigmoid flavour for float targets, softmax+one-hot for indices."""

    def __init__(self, factory: Callable[..., nn.Module], sigmoid: dict, softmax: dict, **kwargs) -> None:
        super().__init__()
        self.sigmoid_loss = factory(**sigmoid, **kwargs)
        self.softmax_loss = factory(**softmax, **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if is_index_target(target):
            if logits.shape[1] == 1:  # binary logit with index labels: sigmoid flavour
                return self.sigmoid_loss(logits, target.float())
            return self.softmax_loss(logits, target)
        return self.sigmoid_loss(logits, target)


class SoftDice(_SigmoidOrSoftmax):
    """Soft Dice loss ``1 - (2 sum(p t) + smooth_nr) / (sum p + sum t + smooth_dr)``.

    Args:
        weight: per-class weights (e.g. the brain-tumour predecessor project's ``[0.25, 0.25, 0.25, 0.25]``).
        jaccard: IoU instead of Dice (see :class:`SoftIoU`).
        **kwargs: :class:`monai.losses.DiceLoss` arguments (``include_background``, ``batch``,
            ``smooth_nr``, ``smooth_dr``, ``squared_pred``...).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(DiceLoss, {"sigmoid": True}, {"softmax": True, "to_onehot_y": True}, **kwargs)


class SoftIoU(SoftDice):
    """Soft IoU (Jaccard) loss ``1 - (sum(p t) + s) / (sum p + sum t - sum(p t) + s)``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(jaccard=True, **kwargs)


class Tversky(_SigmoidOrSoftmax):
    """Tversky loss (``alpha`` weighs false positives, ``beta`` false negatives; 0.5/0.5 = Dice)."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, **kwargs) -> None:
        super().__init__(TverskyLoss, {"sigmoid": True}, {"softmax": True, "to_onehot_y": True},
                         alpha=alpha, beta=beta, **kwargs)


class Focal(_SigmoidOrSoftmax):
    """Focal loss (Lin et al. 2017): binary (sigmoid) for float targets, categorical (softmax) for
    class indices. ``gamma`` focuses on hard pixels; ``alpha`` / ``weight`` as in MONAI."""

    def __init__(self, gamma: float = 2.0, **kwargs) -> None:
        super().__init__(FocalLoss, {"use_softmax": False}, {"use_softmax": True, "to_onehot_y": True},
                         gamma=gamma, **kwargs)
