"""segmentation_models.pytorch architectures (Unet, UnetPlusPlus, MAnet, Linknet, FPN, PSPNet, PAN,
DeepLabV3, DeepLabV3Plus, UPerNet, Segformer, DPT) with any smp encoder or timm encoder (``tu-`` prefix,
e.g. ``tu-hrnet_w48``, ``tu-resnet10t``).

Nothing is downloaded: ``encoder_weights`` defaults to ``None`` (random initialisation); pass
``encoder_weights_path`` to load a local encoder state dict (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
from torch import nn

from medseg.errors import CheckpointError
from medseg.utils.checkpoint import load_checkpoint

ARCHS = ("Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3", "DeepLabV3Plus",
         "UPerNet", "Segformer", "DPT")


def load_encoder_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict into ``model.encoder`` (keys may carry an ``encoder.`` prefix; a
    classifier head ``fc.*`` is ignored; any other mismatch raises)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model.encoder_weights_path does not exist")
    state = load_checkpoint(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    # nn.Module's method: some smp encoders override load_state_dict and return nothing
    encoder: nn.Module = model.encoder  # type: ignore[assignment]  # smp models have one
    missing, unexpected = nn.Module.load_state_dict(encoder, state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("fc.")]  # an ImageNet classifier head
    if missing or unexpected:
        raise CheckpointError(f"encoder weights {path} do not match the encoder: {len(missing)} missing keys "
                         f"(e.g. {list(missing)[:3]}), {len(unexpected)} unexpected (e.g. {list(unexpected)[:3]})")


def build_smp(
    arch: str,
    encoder_name: str,
    in_channels: int,
    out_channels: int,
    encoder_weights: str | None = None,
    encoder_weights_path: str | None = None,
    **kwargs,
) -> nn.Module:
    """Build an smp model returning logits ``(B, out_channels, H, W)``.

    Args:
        arch: one of :data:`ARCHS` (case-insensitive, as ``smp.create_model``).
        encoder_name: smp encoder (``resnet34``, ``mobilenet_v2``...) or timm encoder (``tu-<name>``).
        in_channels, out_channels: image channels and logit channels.
        encoder_weights: smp weight name (e.g. ``imagenet``); needs network access, so ``None`` by default.
        encoder_weights_path: local encoder state dict loaded after construction.
        **kwargs: architecture arguments (``encoder_depth``, ``decoder_channels``...).
    """
    if arch.lower() not in {a.lower() for a in ARCHS}:
        raise ValueError(f"unknown smp architecture {arch!r}; choose one of {ARCHS}")
    model = smp.create_model(arch, encoder_name=encoder_name, encoder_weights=encoder_weights,
                             in_channels=in_channels, classes=out_channels, **kwargs)
    if encoder_weights_path:
        load_encoder_weights(model, encoder_weights_path)
    # whole-image inference pads to a multiple of the encoder's total stride
    model.size_divisor = 2 ** int(kwargs.get("encoder_depth", 5))
    return model
