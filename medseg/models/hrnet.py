"""HRNet segmentation networks on timm's HRNet encoders (randomly initialised, nothing downloaded).

* :class:`HRNetV2`: HRNetV2 (Sun et al. / Wang et al., TPAMI 2020), the predecessor project's HRNetV2-W48: the four
  resolution branches are upsampled to stride 4, concatenated, mixed by a 1x1 conv-BN-ReLU and
  classified by a 1x1 convolution; logits are upsampled to the input size.
* :class:`DeepLabV3PlusHRNet`: the predecessor project's DeepLabV3+ on HRNet: ASPP on the stride-32 features and the
  DeepLabV3+ decoder (Chen et al. 2018) fusing them with the stride-4 features. smp's DeepLabV3+
  needs a dilated (output stride 8/16) encoder, which timm's HRNet does not provide, hence this class.

Use ``width`` 18, 32 or 48 (``hrnet_w18/w32/w48``); ``encoder_weights_path`` loads a local
state dict into ``encoder``.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from medseg.models.smp_factory import load_encoder_weights


def _encoder(width: int, in_channels: int, feature_location: str) -> nn.Module:
    if width not in (18, 32, 48):
        raise ValueError(f"HRNet width must be 18, 32 or 48, got {width}")
    return timm.create_model(f"hrnet_w{width}", pretrained=False, features_only=True, in_chans=in_channels,
                             feature_location=feature_location, out_indices=(1, 2, 3, 4))


def _channels(encoder: nn.Module) -> list[int]:
    """Channels of a timm ``features_only`` model's outputs, shallowest first."""
    info: Any = encoder.feature_info
    return list(info.channels())


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class HRNetV2(nn.Module):
    """HRNetV2-W``width`` segmentation network returning logits of the input's size."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 48,
                 encoder_weights_path: str | None = None) -> None:
        super().__init__()
        self.encoder = _encoder(width, in_channels, feature_location="")
        if encoder_weights_path:
            load_encoder_weights(self, encoder_weights_path)
        ch = sum(_channels(self.encoder))
        self.head = nn.Sequential(_conv_bn_relu(ch, ch, 1), nn.Conv2d(ch, out_channels, 1))
        self.size_divisor = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        size = feats[0].shape[2:]
        up = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        logits = self.head(torch.cat(up, dim=1))
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)


class DeepLabV3PlusHRNet(nn.Module):
    """DeepLabV3+ decoder on an HRNet-W``width`` encoder (timm's incremental features).

    Args:
        aspp_channels: ASPP and decoder width (256 in the paper).
        atrous_rates: ASPP dilation rates.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 48, aspp_channels: int = 256,
                 atrous_rates: tuple[int, int, int] = (6, 12, 18), encoder_weights_path: str | None = None) -> None:
        super().__init__()
        self.encoder = _encoder(width, in_channels, feature_location="incre")
        if encoder_weights_path:
            load_encoder_weights(self, encoder_weights_path)
        low_ch, high_ch = _channels(self.encoder)[0], _channels(self.encoder)[-1]
        self.aspp = ASPP(high_ch, list(atrous_rates), aspp_channels)
        self.low = _conv_bn_relu(low_ch, 48, 1)
        self.fuse = nn.Sequential(_conv_bn_relu(aspp_channels + 48, aspp_channels, 3),
                                  _conv_bn_relu(aspp_channels, aspp_channels, 3))
        self.classifier = nn.Conv2d(aspp_channels, out_channels, 1)
        self.size_divisor = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        low = self.low(feats[0])
        high = F.interpolate(self.aspp(feats[-1]), size=low.shape[2:], mode="bilinear", align_corners=False)
        logits = self.classifier(self.fuse(torch.cat([high, low], dim=1)))
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)
