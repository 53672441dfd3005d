"""Whole-image inferers, chosen by ``conf/inference/*.yaml`` ``_target_``.

* ``sliding_window`` -> MONAI's :class:`~monai.inferers.SlidingWindowInferer` (Gaussian-weighted windows of
  the training patch size), ``simple`` -> MONAI's :class:`~monai.inferers.SimpleInferer` (one pass at the
  input's size);
* ``whole`` -> :class:`PadToMultipleInferer` and ``resize`` -> :class:`ResizeInferer`, medseg's own for the
  two rules MONAI has no inferer for.

Every inferer is called as MONAI's are: ``inferer(image, network)`` -> logits of the image's spatial size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import Inferer, SlidingWindowInferer
from omegaconf import DictConfig

from medseg.errors import ConfigError

#: Padding multiple of a network without a ``size_divisor`` attribute (the 2 ** 5 of a depth-5 encoder);
#: the one default shared by the inferers, the model builder and the exported package.
DEFAULT_SIZE_DIVISOR = 32


def net_size_divisor(net: object) -> int:
    """The spatial multiple ``net`` needs (its ``size_divisor`` attribute, else :data:`DEFAULT_SIZE_DIVISOR`)."""
    return int(getattr(net, "size_divisor", DEFAULT_SIZE_DIVISOR))


class PadToMultipleInferer(Inferer):
    """Zero-pad to a multiple of ``size_divisor`` (centred), run the network once, crop the logits back.

    MONAI's ``SimpleInferer`` runs at the input's size (a U-Net of depth d fails on sizes that are not
    multiples of 2 ** d) and its ``DivisiblePad`` pads one un-batched image; this pads the batch once and
    crops back, with the split the exported package's runner reproduces (``extra // 2`` before).

    Args:
        size_divisor: the padding multiple; ``None``: the network's own, filled in by :func:`make_inferer`.
    """

    def __init__(self, size_divisor: int | None = None) -> None:
        super().__init__()
        if size_divisor is not None and int(size_divisor) < 1:
            raise ValueError(f"size_divisor must be >= 1, got {size_divisor}")
        self.size_divisor = None if size_divisor is None else int(size_divisor)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        return pad_run_crop(network, inputs, self.size_divisor or DEFAULT_SIZE_DIVISOR)


class ResizeInferer(Inferer):
    """For models trained on resized images: resize to ``resize_to`` (bi/trilinear), run, resize the
    logits back to the input's size. MONAI has no inferer for this; its ``Resize`` transform works on one
    un-batched image, so the batch is interpolated here directly."""

    def __init__(self, resize_to: Sequence[int]) -> None:
        super().__init__()
        if not resize_to:
            raise ValueError("resize inference needs resize_to")
        self.resize_to = tuple(int(s) for s in resize_to)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        spatial = inputs.shape[2:]
        interp = "bilinear" if inputs.ndim == 4 else "trilinear"
        small = F.interpolate(inputs, size=self.resize_to, mode=interp, align_corners=False)
        return F.interpolate(network(small), size=spatial, mode=interp, align_corners=False)


def pad_run_crop(net: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, divisor: int) -> torch.Tensor:
    """``net`` on ``image`` zero-padded to a multiple of ``divisor`` (centred), cropped back to its size."""
    spatial = image.shape[2:]
    pads: list[int] = []
    for s in reversed(spatial):
        extra = (-s) % divisor
        pads += [extra // 2, extra - extra // 2]
    out = net(F.pad(image, pads))
    slices = [slice(None), slice(None)]
    for i, s in enumerate(spatial):
        lo = pads[2 * (len(spatial) - 1 - i)]
        slices.append(slice(lo, lo + s))
    return out[tuple(slices)]


#: ``_target_`` of the inference config before the inferers (runs trained then keep working)
LEGACY_TARGET = "medseg.inference.predictor.Predictor"


def upgrade_inference_config(inference_cfg: DictConfig) -> DictConfig:
    """A run config's ``inference`` group in today's form: the ``Predictor(mode=...)`` of runs trained
    before the inferers becomes the inferer that computes the same logits (other configs unchanged)."""
    from omegaconf import OmegaConf

    if str(inference_cfg.get("_target_", "")) != LEGACY_TARGET:
        return inference_cfg
    old = inference_cfg
    mode = old.get("mode", "sliding_window")
    if mode == "sliding_window":
        new: dict[str, Any] = {"_target_": "monai.inferers.SlidingWindowInferer", "roi_size": old.get("roi_size"),
                               "overlap": old.get("overlap", 0.25), "sw_batch_size": old.get("sw_batch_size", 16),
                               "mode": old.get("blend", "gaussian"), "sigma_scale": 0.125, "padding_mode": "constant",
                               "device": old.get("output_device")}
    elif mode == "whole":
        # the old builder always passed the network's size_divisor, so the config's own never counted
        new = {"_target_": "medseg.inference.inferers.PadToMultipleInferer", "size_divisor": None}
    elif mode == "resize":
        new = {"_target_": "medseg.inference.inferers.ResizeInferer", "resize_to": old.get("resize_to")}
    else:
        raise ConfigError(f"inference.mode={mode!r}: must be sliding_window, whole or resize")
    return OmegaConf.create(new)


def root_cause(exc: BaseException) -> str:
    """``Type: message`` of the innermost cause (Hydra wraps a constructor's error in its own)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


def make_inferer(inference_cfg: DictConfig, net: object) -> Inferer:
    """Instantiate the ``inference`` config group (:func:`upgrade_inference_config` first); a
    :class:`PadToMultipleInferer` without a ``size_divisor`` gets the network's own (:func:`net_size_divisor`)."""
    from hydra.utils import instantiate

    cfg = upgrade_inference_config(inference_cfg)
    try:
        inferer = instantiate(cfg)
    except Exception as exc:
        raise ConfigError(f"inference (_target_={cfg.get('_target_')!r}): cannot be built: {root_cause(exc)}; "
                          "see conf/inference/ for each inferer's arguments") from exc
    if not isinstance(inferer, Inferer):
        raise ConfigError(f"inference._target_={cfg.get('_target_')!r} is not a MONAI Inferer "
                          "(see conf/inference/ for the inferers medseg uses)")
    if isinstance(inferer, SlidingWindowInferer) and not inferer.roi_size:
        raise ConfigError("inference.roi_size: sliding-window inference needs a window size (default: data.patch_size)")
    if isinstance(inferer, PadToMultipleInferer) and inferer.size_divisor is None:
        inferer.size_divisor = net_size_divisor(net)
    return inferer
