"""Soft-clDice loss (Shit et al., CVPR 2021): a topology-aware loss for thin tubular structures.

``1 - 2 Tprec Tsens / (Tprec + Tsens)`` on soft skeletons (iterated min/max pooling, 2D and 3D):
``Tprec = (sum(S(p) t) + s) / (sum S(p) + s)``, ``Tsens = (sum(S(t) p) + s) / (sum S(t) + s)``, per
sample, averaged over the batch. It is MONAI's :class:`monai.losses.SoftclDiceLoss` with the
activation picked from the target as in :mod:`medseg.losses.overlap` (float targets: sigmoid per
channel; integer class indices: softmax, one-hot target, background channel left out). A broken
vessel loses a piece of the target's skeleton (Tsens drops) while a thickened one keeps it, so
clDice penalises breaks far more than Dice does at the same pixel error. Mix it with BCE + Dice
(``loss=bce_dice_cldice``): on its own it does not constrain vessel width.
"""

from __future__ import annotations

import torch
from monai.losses import SoftclDiceLoss
from torch import nn

from medseg.losses._convention import is_index_target


class SoftClDice(nn.Module):
    """Soft-clDice for every task type.

    Args:
        iterations: soft-skeleton iterations (MONAI's ``iter_``; at least the largest vessel radius in
            pixels: 3 covers DRIVE / CHASE_DB1 vessels at full resolution).
        smooth_nr, smooth_dr: added to the numerators and denominators of Tprec and Tsens.
    """

    def __init__(self, iterations: int = 3, smooth_nr: float = 1.0, smooth_dr: float = 1.0) -> None:
        super().__init__()
        it = int(iterations)
        self.sigmoid_loss = SoftclDiceLoss(iter_=it, smooth_nr=smooth_nr, smooth_dr=smooth_dr, sigmoid=True)
        self.softmax_loss = SoftclDiceLoss(iter_=it, smooth_nr=smooth_nr, smooth_dr=smooth_dr, softmax=True,
                                           to_onehot_y=True, include_background=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim not in (4, 5):
            raise ValueError(f"soft-clDice needs (B, C, H, W) or (B, C, D, H, W) logits, got {tuple(logits.shape)}")
        # max pooling in float32: the soft skeleton subtracts nearly equal values
        logits = logits.float()
        if is_index_target(target):
            if logits.shape[1] == 1:  # binary logit with index labels: sigmoid flavour
                return self.sigmoid_loss(logits, target.float())
            return self.softmax_loss(logits, target)
        return self.sigmoid_loss(logits, target.float())
