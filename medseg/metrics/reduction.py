"""MONAI's ``include_background`` and ``reduction`` knobs for every per-class metric function.

Per-class metric functions return ``(B, K)`` tensors (batch, class). ``include_background=False``
drops class 0 when there is more than one class (``monai.metrics.utils.ignore_background``);
``reduction`` is one of MONAI's ``"none"`` (medseg's default: the ``(B, K)`` values),
``"mean"``, ``"sum"``, ``"mean_batch"``, ``"sum_batch"``, ``"mean_channel"``, ``"sum_channel"``
and reduces over the non-``nan`` values only, exactly as ``monai.metrics.utils.do_metric_reduction``
(which does the work). Note that MONAI's metric classes default to ``reduction="mean"`` (and
``HausdorffDistanceMetric`` to ``include_background=False``); medseg's functions default to the
unreduced values with every class, as the tables need them.
"""

from __future__ import annotations

from typing import Literal

import torch

Reduction = Literal["none", "mean", "sum", "mean_batch", "sum_batch", "mean_channel", "sum_channel"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum", "mean_batch", "sum_batch", "mean_channel", "sum_channel")


def drop_background(x: torch.Tensor, include_background: bool = True) -> torch.Tensor:
    """``x`` ``(B, K, ...)`` without class 0 unless ``include_background`` or there is one class."""
    return x if include_background or x.shape[1] <= 1 else x[:, 1:]


def reduce_metric(values: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Reduce ``(B, K)`` metric values as MONAI does (``nan`` left out)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction {reduction!r}: choose one of {list(REDUCTIONS)}")
    if reduction == "none":
        return values
    from monai.metrics.utils import do_metric_reduction  # MONAI is heavy to import: only when asked

    return do_metric_reduction(values.clone(), reduction)[0]


def apply_knobs(
    values: dict[str, torch.Tensor], include_background: bool = True, reduction: str = "none"
) -> dict[str, torch.Tensor]:
    """:func:`drop_background` then :func:`reduce_metric` on every ``(B, K)`` value of ``values``."""
    return {k: reduce_metric(drop_background(v, include_background), reduction) for k, v in values.items()}
