"""MONAI networks behind the ``in_channels`` / ``out_channels`` constructor convention of medseg:
SegResNet (Myronenko 2018), UNETR (Hatamizadeh et al. 2022) and SwinUNETR (Hatamizadeh et al. 2022)."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import UNETR, SegResNet, SwinUNETR
from torch import nn


def segresnet(in_channels: int, out_channels: int, spatial_dims: int = 3, init_filters: int = 16,
              blocks_down: Sequence[int] = (1, 2, 2, 4), blocks_up: Sequence[int] = (1, 1, 1),
              dropout_prob: float | None = None, **kwargs) -> nn.Module:
    """MONAI ``SegResNet``; inputs must be divisible by ``2 ** (len(blocks_down) - 1)``."""
    net = SegResNet(spatial_dims=spatial_dims, init_filters=init_filters, in_channels=in_channels,
                    out_channels=out_channels, blocks_down=tuple(blocks_down), blocks_up=tuple(blocks_up),
                    dropout_prob=dropout_prob, **kwargs)
    net.size_divisor = 2 ** (len(blocks_down) - 1)
    return net


def unetr(in_channels: int, out_channels: int, img_size: Sequence[int], spatial_dims: int = 3,
          feature_size: int = 16, hidden_size: int = 768, mlp_dim: int = 3072, num_heads: int = 12,
          **kwargs) -> nn.Module:
    """MONAI ``UNETR``; ``img_size`` is fixed at construction (the training patch size), so infer
    with a sliding window of that size."""
    img_size = tuple(int(s) for s in img_size)
    if len(img_size) != spatial_dims:
        raise ValueError(f"UNETR img_size {img_size} does not match spatial_dims={spatial_dims}")
    net = UNETR(in_channels=in_channels, out_channels=out_channels, img_size=img_size, spatial_dims=spatial_dims,
                feature_size=feature_size, hidden_size=hidden_size, mlp_dim=mlp_dim, num_heads=num_heads, **kwargs)
    net.size_divisor = 16  # type: ignore[assignment]  # nn.Module's __setattr__ is typed for tensors/modules
    return net


def swinunetr(in_channels: int, out_channels: int, spatial_dims: int = 3, feature_size: int = 24,
              depths: Sequence[int] = (2, 2, 2, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
              **kwargs) -> nn.Module:
    """MONAI ``SwinUNETR`` (MONAI >= 1.5 takes no ``img_size``); inputs divisible by 32."""
    net = SwinUNETR(in_channels=in_channels, out_channels=out_channels, spatial_dims=spatial_dims,
                    feature_size=feature_size, depths=tuple(depths), num_heads=tuple(num_heads), **kwargs)
    net.size_divisor = 32  # type: ignore[assignment]  # as above
    return net
