"""Helpers that read the loss convention of :mod:`medseg.tasks`: integer ``(B, 1, ...)`` targets are
multi-class class indices, float ``(B, C, ...)`` targets are binary / multi-label multi-hot maps."""

from __future__ import annotations

import torch


def is_index_target(target: torch.Tensor) -> bool:
    """``True`` for multi-class class-index targets (integer dtype)."""
    return not torch.is_floating_point(target)


def class_indices(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Target -> long class indices ``(B, *spatial)`` for softmax/NLL losses.

    Accepts multi-class index targets ``(B, 1, ...)`` and binary float targets ``(B, 1, ...)``
    (foreground = index 1). Multi-label targets have no single class per pixel and are refused.
    """
    if target.shape[1] != 1:
        raise ValueError(
            f"this loss needs one class per pixel (binary or multi-class task), got a target with "
            f"{target.shape[1]} channels (multi-label); use bce, dice or focal instead")
    return (target[:, 0] > 0.5).long() if torch.is_floating_point(target) else target[:, 0].long()


def two_class_logits(logits: torch.Tensor) -> torch.Tensor:
    """A 1-channel binary logit ``z`` -> the 2-class logits ``(0, z)``; others unchanged.

    ``softmax((0, z))[1] = 1 / (1 + exp(-z)) = sigmoid(z)``, so softmax/NLL losses on ``(0, z)`` see
    exactly the probabilities the binary task's sigmoid activation produces.
    """
    if logits.shape[1] != 1:
        return logits
    return torch.cat([torch.zeros_like(logits), logits], dim=1)
