"""Classic and residual U-Nets (Ronneberger et al., MICCAI 2015) for 2D and 3D.

Two 3x3(x3) convolutions per level, max-pool down, transposed-convolution up, skip connections by
concatenation, a 1x1 output convolution returning logits. Width doubles per level from
``base_channels``.

* ``padding="same"`` (default): the output has the input's size (inputs divisible by ``2 ** depth``).
* ``padding="valid"``: the original unpadded network. Every convolution loses a pixel per side and the
  encoder features are centre-cropped before concatenation, so the output is *smaller* than the input
  (depth 4: 572 -> 388). In training the :class:`~medseg.module.SegmentationModule` compares against
  the centre-cropped target automatically. In eval mode (validation, test, prediction) the network
  mirror-pads its input by the border it loses (Ronneberger's overlap-tile strategy) so the output
  has the input's size and any inference rule works unchanged. Inputs must give even sizes before
  every pooling: :meth:`UNet.valid_input_size` names the nearest valid size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.models.blocks import DoubleConv, center_crop, conv_nd, mirror_pad

PADDINGS = ("same", "valid")


class UNet(nn.Module):
    """Classic U-Net.

    Args:
        in_channels: image channels.
        out_channels: logit channels (see :class:`medseg.tasks.Task`); ``None`` builds the network
            without its 1x1 head (``forward`` then returns the last decoder features, used by
            :class:`~medseg.models.chained_unet.ChainedUNet`).
        spatial_dims: 2 or 3.
        depth: number of down-sampling steps (levels = depth + 1).
        base_channels: width of the first level; doubles per level.
        norm: ``none``, ``batch``, ``instance`` or ``group``.
        dropout: dropout probability inside each level (a float, or one per level, encoder order;
            the decoder reuses the values of the matching encoder levels).
        padding: ``same`` or ``valid`` (see the module docstring).
        residual: residual blocks (1x1-projected shortcut) in encoder and decoder.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None,
        spatial_dims: int = 2,
        depth: int = 4,
        base_channels: int = 32,
        norm: str | None = "batch",
        dropout: float | Sequence[float] = 0.0,
        padding: str = "same",
        residual: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        widths = [base_channels * 2**i for i in range(depth + 1)]
        drops = list(dropout) if isinstance(dropout, (list, tuple, Sequence)) else [float(dropout)] * (depth + 1)
        if len(drops) != depth + 1:
            raise ValueError(f"dropout needs {depth + 1} values (one per level), got {len(drops)}")
        d = spatial_dims
        self.spatial_dims, self.depth, self.padding = d, depth, padding
        self.widths = widths
        # inference rules pad whole images to a multiple of this; valid nets pad themselves
        self.size_divisor = 2**depth if padding == "same" else 1
        pad = 1 if padding == "same" else 0
        self.down = nn.ModuleList()
        ch = in_channels
        for w, p in zip(widths, drops):
            self.down.append(DoubleConv(d, ch, w, norm, float(p), pad, residual))
            ch = w
        self.pool = (nn.MaxPool2d if d == 2 else nn.MaxPool3d)(2)
        up_conv = nn.ConvTranspose2d if d == 2 else nn.ConvTranspose3d
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for w, p in zip(reversed(widths[:-1]), reversed(drops[:-1])):
            self.up.append(up_conv(ch, w, 2, stride=2))
            self.up_blocks.append(DoubleConv(d, 2 * w, w, norm, float(p), pad, residual))
            ch = w
        self.out_features = ch
        self.head = conv_nd(d)(ch, out_channels, 1) if out_channels is not None else None

    # ------------------------------------------------------------------ sizes
    def output_size(self, size: int) -> int | None:
        """Output length along one axis for an input of ``size`` (``None`` if that size is invalid)."""
        if self.padding == "same":
            return size if size % (2**self.depth) == 0 else None
        n = size
        for _ in range(self.depth):
            n -= 4
            if n <= 0 or n % 2:
                return None
            n //= 2
        n -= 4
        if n <= 0:
            return None
        for _ in range(self.depth):
            n = 2 * n - 4
        return n if n > 0 else None

    def valid_input_size(self, output: int) -> int:
        """Smallest input length whose output covers at least ``output`` pixels."""
        n = max(int(output), 1)
        while (o := self.output_size(n)) is None or o < output:
            n += 1
        return n

    def _check_size(self, x: torch.Tensor) -> None:
        for s in (int(v) for v in x.shape[2:]):
            if self.output_size(s) is not None:
                continue
            if self.padding == "same":
                raise ValueError(f"U-Net input size {tuple(x.shape[2:])}: every side must be divisible "
                                 f"by 2**depth = {2**self.depth}")
            lower = next((n for n in range(s - 1, 0, -1) if self.output_size(n) is not None), None)
            upper = next(n for n in range(s + 1, 100 * s + 1000) if self.output_size(n) is not None)
            raise ValueError(
                f"valid-padding U-Net (depth {self.depth}) cannot take input size {tuple(x.shape[2:])}: side {s} "
                f"gives an odd or empty feature map before a pooling; nearest valid sides: {lower} and {upper}")

    # ---------------------------------------------------------------- forward
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last decoder feature map (``out_features`` channels)."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, block, skip in zip(self.up, self.up_blocks, reversed(skips)):
            x = up(x)
            x = block(torch.cat([center_crop(skip, x.shape[2:]), x], dim=1))
        return x

    def _forward_checked(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network on ``x`` as is (a valid net returns a smaller map); bad sizes raise."""
        self._check_size(x)
        y = self.features(x)
        return self.head(y) if self.head is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "valid" and not self.training:
            return self.forward_overlap_tile(x)
        return self._forward_checked(x)

    def forward_overlap_tile(self, x: torch.Tensor) -> torch.Tensor:
        """Mirror-pad ``x`` by the border the valid network loses, run it, and crop the output back to
        ``x``'s spatial size (Ronneberger's overlap-tile; a no-op rule for ``same`` padding)."""
        if self.padding == "same":
            return self._forward_checked(x)
        spatial = [int(s) for s in x.shape[2:]]
        pads = []
        for s in spatial:
            n_in = self.valid_input_size(s)
            out = self.output_size(n_in)
            assert out is not None  # valid_input_size returns a valid size
            border = (n_in - out) // 2
            lo = border + (out - s) // 2
            pads.append((lo, n_in - s - lo))
        y = self._forward_checked(mirror_pad(x, pads))
        index = [slice(None), slice(None)]
        for s, o, (lo, hi) in zip(spatial, y.shape[2:], pads):
            start = lo - (s + lo + hi - o) // 2  # output pixel j sits at padded input pixel j + border
            index.append(slice(start, start + s))
        return y[tuple(index)]


class ResidualUNet(UNet):
    """U-Net with residual blocks in encoder and decoder (same arguments as :class:`UNet`)."""

    def __init__(self, in_channels: int, out_channels: int | None, **kwargs) -> None:
        kwargs.setdefault("residual", True)
        super().__init__(in_channels, out_channels, **kwargs)
