"""Classic U-Net (Ronneberger et al., MICCAI 2015) for 2D and 3D.

Two 3x3 convolutions per level, max-pool down, transposed-convolution up, skip connections by
concatenation, a 1x1 output convolution returning logits. Width doubles per level from
``base_channels``. ``padding="same"`` keeps the output the input's size (inputs must be divisible
by ``2 ** depth``).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_nd(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def norm_layer(kind: str | None, dims: int, channels: int) -> nn.Module:
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"norm must be none, batch, instance or group, got {kind!r}")


def dropout_layer(p: float, dims: int) -> nn.Module:
    if p <= 0:
        return nn.Identity()
    return (nn.Dropout2d if dims == 2 else nn.Dropout3d)(p)


class DoubleConv(nn.Sequential):
    def __init__(self, dims, in_ch, out_ch, norm="batch", dropout=0.0, padding=1):
        conv = conv_nd(dims)
        super().__init__(
            conv(in_ch, out_ch, 3, padding=padding, bias=norm in (None, "none")),
            norm_layer(norm, dims, out_ch),
            nn.ReLU(inplace=True),
            dropout_layer(dropout, dims),
            conv(out_ch, out_ch, 3, padding=padding, bias=norm in (None, "none")),
            norm_layer(norm, dims, out_ch),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Classic U-Net.

    Args:
        in_channels: image channels.
        out_channels: logit channels (see :class:`medseg.tasks.Task`).
        spatial_dims: 2 or 3.
        depth: number of down-sampling steps (levels = depth + 1).
        base_channels: width of the first level; doubles per level.
        norm: ``none``, ``batch``, ``instance`` or ``group``.
        dropout: dropout probability inside each level (a float, or one per level).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 2,
        depth: int = 4,
        base_channels: int = 32,
        norm: str | None = "batch",
        dropout: float | list[float] = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        widths = [base_channels * 2**i for i in range(depth + 1)]
        drops = list(dropout) if isinstance(dropout, (list, tuple)) else [float(dropout)] * (depth + 1)
        if len(drops) != depth + 1:
            raise ValueError(f"dropout needs {depth + 1} values (one per level), got {len(drops)}")
        d = spatial_dims
        self.size_divisor = 2**depth
        self.down = nn.ModuleList()
        ch = in_channels
        for w, p in zip(widths, drops):
            self.down.append(DoubleConv(d, ch, w, norm, p))
            ch = w
        self.pool = (nn.MaxPool2d if d == 2 else nn.MaxPool3d)(2)
        up_conv = nn.ConvTranspose2d if d == 2 else nn.ConvTranspose3d
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for w, p in zip(reversed(widths[:-1]), reversed(drops[:-1])):
            self.up.append(up_conv(ch, w, 2, stride=2))
            self.up_blocks.append(DoubleConv(d, 2 * w, w, norm, p))
            ch = w
        self.head = conv_nd(d)(ch, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, block, skip in zip(self.up, self.up_blocks, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)
