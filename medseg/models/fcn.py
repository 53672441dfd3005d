"""torchvision's FCN with a ResNet-101 backbone (Long et al. 2015; the predecessor project's FCN_ResNet101),
randomly initialised (no download), for any number of input channels."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.segmentation import fcn_resnet50, fcn_resnet101

BACKBONES = {"resnet50": fcn_resnet50, "resnet101": fcn_resnet101}


class FCN(nn.Module):
    """FCN-ResNet returning logits.

    Args:
        in_channels, out_channels: image and logit channels.
        backbone: ``resnet101`` (default) or ``resnet50``.
        aux_loss: add torchvision's auxiliary head on ``layer3``; in training the model then returns
            ``(out, aux)`` for the deep-supervision loss.
        weights_path: local state dict of the whole FCN (``torch.load(weights_only=True)``).
    """

    def __init__(self, in_channels: int, out_channels: int, backbone: str = "resnet101", aux_loss: bool = False,
                 weights_path: str | None = None) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"FCN backbone must be one of {list(BACKBONES)}, got {backbone!r}")
        self.model = BACKBONES[backbone](weights=None, weights_backbone=None, num_classes=out_channels,
                                         aux_loss=aux_loss)
        if in_channels != 3:
            old = self.model.backbone.conv1
            self.model.backbone.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride,
                                                  old.padding, bias=False)
        if weights_path:
            from medseg.utils.checkpoint import load_checkpoint

            self.model.load_state_dict(load_checkpoint(weights_path))
        self.size_divisor = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x)
        if self.training and "aux" in out:
            return out["out"], out["aux"]
        return out["out"]
