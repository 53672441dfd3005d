"""Whole-image inference: sliding window (MONAI, Gaussian-weighted), padded whole image, or resize."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


class Predictor:
    """Turn a network into a full-image logit map of the input's spatial size.

    Args:
        mode: ``"sliding_window"`` (patch-trained models; MONAI ``sliding_window_inference`` with
            Gaussian importance weighting), ``"whole"`` (pad to a multiple of ``size_divisor``, run
            once, crop back) or ``"resize"`` (models trained on resized images: resize to
            ``resize_to``, run, resize the logits back).
        roi_size: window size for sliding window.
        overlap: window overlap fraction.
        sw_batch_size: windows per forward pass.
        size_divisor: padding multiple for ``whole`` mode (2 ** depth of a U-Net).
        resize_to: spatial size for ``resize`` mode.
        output_device: where the sliding window accumulates the full-size output (``"cpu"`` keeps a
            2048x2048 x 29-class map off the GPU while the windows run there); ``None``: the input's.
    """

    def __init__(
        self,
        mode: str = "sliding_window",
        roi_size: Sequence[int] | None = None,
        overlap: float = 0.25,
        sw_batch_size: int = 16,
        blend: str = "gaussian",
        size_divisor: int = 16,
        resize_to: Sequence[int] | None = None,
        output_device: str | None = None,
    ) -> None:
        if mode not in ("sliding_window", "whole", "resize"):
            raise ValueError(f"inference mode must be sliding_window, whole or resize, got {mode!r}")
        if mode == "sliding_window" and not roi_size:
            raise ValueError("sliding_window inference needs roi_size")
        if mode == "resize" and not resize_to:
            raise ValueError("resize inference needs resize_to")
        self.mode, self.overlap, self.sw_batch_size, self.blend = mode, overlap, sw_batch_size, blend
        self.roi_size = tuple(roi_size) if roi_size else None
        self.size_divisor = size_divisor
        self.resize_to = tuple(resize_to) if resize_to else None
        self.output_device = output_device

    @torch.no_grad()
    def __call__(self, net: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        if self.mode == "sliding_window":
            from monai.inferers import sliding_window_inference

            return sliding_window_inference(
                image, self.roi_size, self.sw_batch_size, net, overlap=self.overlap, mode=self.blend,
                padding_mode="constant", sw_device=image.device, device=self.output_device or image.device,
            )
        if self.mode == "resize":
            spatial = image.shape[2:]
            interp = "bilinear" if image.ndim == 4 else "trilinear"
            small = F.interpolate(image, size=self.resize_to, mode=interp, align_corners=False)
            return F.interpolate(net(small), size=spatial, mode=interp, align_corners=False)
        return pad_run_crop(net, image, self.size_divisor)


def pad_run_crop(net, image: torch.Tensor, divisor: int) -> torch.Tensor:
    spatial = image.shape[2:]
    pads = []
    for s in reversed(spatial):
        extra = (-s) % divisor
        pads += [extra // 2, extra - extra // 2]
    out = net(F.pad(image, pads))
    slices = [slice(None), slice(None)]
    for i, s in enumerate(spatial):
        lo = pads[2 * (len(spatial) - 1 - i)]
        slices.append(slice(lo, lo + s))
    return out[tuple(slices)]
