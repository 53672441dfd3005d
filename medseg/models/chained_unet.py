"""Chained U-Net -> residual U-Net (Francia et al., "Chaining a U-Net With a Residual U-Net for
Retinal Blood Vessels Segmentation", IEEE Access 8, 2020).

From the paper:

* two networks in sequence: a U-Net that extracts features, and a residual U-Net that refines them;
* the second network takes the first one's decoder output (its last feature maps, not a
  segmentation) as input, and its levels keep the first network's channel counts and image sizes;
* a 1x1 convolution and a LogSoftmax output layer, trained with a negative log-likelihood loss
  whose vessel-class weight is drawn at random on every step
  (:class:`medseg.losses.nll.StochasticWeightedNLL`).

Our reading of it / choices the paper leaves open:

* the network returns *logits*: ``log_softmax(logits)`` is exactly the paper's LogSoftmax output,
  applied inside the NLL losses; at inference the task activation (softmax for a multi-class task,
  sigmoid for a 1-channel binary task, which equals a softmax over the logit pair ``(0, z)``) gives
  the same probabilities;
* the two U-Nets are independent (no skip connections between them); both use the same block
  options (``norm``, ``dropout``, ``padding="same"``);
* ``supervise_both=true`` adds a 1x1 head on the first network's features; in training the model
  then returns ``(final_logits, first_stage_logits)`` and the module's deep-supervision loss weights
  them (``module.deep_supervision_weights``); in eval mode only the final logits are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medseg.models.blocks import conv_nd
from medseg.models.unet import UNet


class ChainedUNet(nn.Module):
    """U-Net feature extractor followed by a residual U-Net with the same widths and depth.

    Args:
        in_channels: image channels.
        out_channels: logit channels (2 for the paper's background/vessel softmax; 1 for a binary
            task, where the NLL losses read the logit ``z`` as the pair ``(0, z)``).
        spatial_dims: 2 or 3.
        depth: down-sampling steps of each U-Net.
        base_channels: first-level width of each U-Net (doubles per level).
        norm: ``none`` | ``batch`` | ``instance`` | ``group``.
        dropout: per-level dropout (float or list), both networks.
        supervise_both: also return the first network's logits in training (deep supervision).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 2,
        depth: int = 4,
        base_channels: int = 32,
        norm: str | None = "batch",
        dropout: float | Sequence[float] = 0.0,
        supervise_both: bool = False,
    ) -> None:
        super().__init__()
        common: dict[str, Any] = {"spatial_dims": spatial_dims, "depth": depth, "base_channels": base_channels, "norm": norm,
                  "dropout": dropout, "padding": "same"}
        self.first = UNet(in_channels, None, residual=False, **common)
        self.second = UNet(self.first.out_features, out_channels, residual=True, **common)
        self.first_head = conv_nd(spatial_dims)(self.first.out_features, out_channels, 1) if supervise_both else None
        self.size_divisor = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        feats = self.first(x)
        out = self.second(feats)
        if self.training and self.first_head is not None:
            return out, self.first_head(feats)
        return out
