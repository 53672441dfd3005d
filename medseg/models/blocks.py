"""Building blocks shared by the U-Net family (2D and 3D): convolutions, normalisation, dropout,
plain and residual double-convolution blocks, centre cropping and mirror padding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_nd(dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return nn.Conv2d if dims == 2 else nn.Conv3d


def norm_layer(kind: str | None, dims: int, channels: int) -> nn.Module:
    """``none`` | ``batch`` | ``instance`` | ``group`` normalisation for ``dims``-D feature maps."""
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
    """Channel dropout (``Dropout2d``/``Dropout3d``), identity when ``p <= 0``."""
    if p <= 0:
        return nn.Identity()
    return (nn.Dropout2d if dims == 2 else nn.Dropout3d)(p)


def center_crop(x: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
    """Crop the trailing spatial dims of ``x`` (``(B, C, *S)`` or ``(B, *S)``) to ``spatial``, centred."""
    spatial = tuple(int(s) for s in spatial)
    have = x.shape[-len(spatial):]
    if tuple(have) == spatial:
        return x
    if any(h < s for h, s in zip(have, spatial)):
        raise ValueError(f"cannot centre-crop spatial size {tuple(have)} to the larger {spatial}")
    index = [slice(None)] * (x.ndim - len(spatial))
    index += [slice((h - s) // 2, (h - s) // 2 + s) for h, s in zip(have, spatial)]
    return x[tuple(index)]


def mirror_pad(x: torch.Tensor, pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Mirror (reflect) padding of the spatial dims, ``pads[i] = (before, after)`` for spatial dim ``i``.

    Pads wider than the image are applied in several reflections, as in Ronneberger's overlap-tile.
    """
    pads = [(int(a), int(b)) for a, b in pads]
    while any(a > 0 or b > 0 for a, b in pads):
        step, rest = [], []
        for (a, b), size in zip(pads, x.shape[2:]):
            lim = max(size - 1, 0)
            sa, sb = min(a, lim), min(b, lim)
            if (a or b) and lim == 0:
                raise ValueError(f"cannot mirror-pad a spatial dimension of size {size}")
            step.append((sa, sb))
            rest.append((a - sa, b - sb))
        flat = [v for a, b in reversed(step) for v in (a, b)]
        x = F.pad(x, flat, mode="reflect")
        pads = rest
    return x


class DoubleConv(nn.Module):
    """Two 3x3(x3) convolutions, each followed by norm and ReLU, dropout between them (as in the predecessor projects).

    Args:
        dims: 2 or 3.
        in_ch, out_ch: channels.
        norm: see :func:`norm_layer`.
        dropout: dropout probability between the two convolutions.
        padding: 1 (``same``) or 0 (``valid``: each convolution loses one pixel per side).
        residual: add a (1x1-projected) shortcut from the input before the last ReLU, which makes
            this a residual block (He et al. 2016); with ``padding=0`` the shortcut is centre-cropped.
    """

    def __init__(self, dims: int, in_ch: int, out_ch: int, norm: str | None = "batch", dropout: float = 0.0,
                 padding: int = 1, residual: bool = False) -> None:
        super().__init__()
        conv = conv_nd(dims)
        bias = norm in (None, "none")
        self.body = nn.Sequential(
            conv(in_ch, out_ch, 3, padding=padding, bias=bias),
            norm_layer(norm, dims, out_ch),
            nn.ReLU(inplace=True),
            dropout_layer(dropout, dims),
            conv(out_ch, out_ch, 3, padding=padding, bias=bias),
            norm_layer(norm, dims, out_ch),
        )
        self.residual = residual
        self.shortcut: nn.Module | None = None
        if residual:
            self.shortcut = (nn.Identity() if in_ch == out_ch else
                             nn.Sequential(conv(in_ch, out_ch, 1, bias=bias), norm_layer(norm, dims, out_ch)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.shortcut is not None:
            y = y + center_crop(self.shortcut(x), y.shape[2:])
        return self.act(y)
