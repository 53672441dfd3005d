"""Task types: how logits become probabilities, probabilities become masks, and labels become targets.

======================  ================  =====================  ===================================
task                    output channels   activation             decision rule
======================  ================  =====================  ===================================
``binary``              1                 sigmoid                ``p > threshold``
``multiclass``          n_classes + 1     softmax (background)   ``argmax``
``multilabel``          n_classes         sigmoid per class      ``p_k > threshold`` (classes overlap)
======================  ================  =====================  ===================================

Loss convention (every loss in :mod:`medseg.losses` follows it): losses receive raw logits
``(B, C, *spatial)`` and a target that is float multi-hot ``(B, C, *spatial)`` for binary and
multi-label tasks, and integer class indices ``(B, 1, *spatial)`` for multi-class tasks (MONAI's
convention, so ``monai.losses.DiceLoss(to_onehot_y=True, softmax=True)`` works unchanged).

Metrics compare boolean foreground maps ``(B, K, *spatial)``: one channel per foreground class
(``K = 1`` for binary, ``n_classes`` otherwise; multi-class background is not scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

TASKS = ("binary", "multiclass", "multilabel")
Maps = TypeVar("Maps", torch.Tensor, np.ndarray)


def discretize(kind: str, probs: Maps, thresholds: float | Sequence[float] | np.ndarray | None = None,
               class_axis: int = 0) -> Maps:
    """Probabilities -> boolean foreground maps, one per scored class: the one decision rule of medseg
    (training metrics, every scorer, medseg-select's search, a selection's pipeline), for torch tensors
    and numpy arrays alike.

    ``multiclass``: the arg-max over ``class_axis``, then one map per foreground class ``1..C-1``
    (``thresholds`` unused). ``binary`` / ``multilabel``: ``probs > threshold``, one threshold or one
    per channel (``None``: 0.5), compared in the probabilities' dtype (a float32 0.3 is not above 0.3)."""
    if kind == "multiclass":
        labels = probs.argmax(class_axis)
        maps = [labels == k for k in range(1, probs.shape[class_axis])]
        if isinstance(probs, torch.Tensor):
            return torch.stack(maps, dim=class_axis)
        return np.stack(maps, axis=class_axis)
    if thresholds is None or np.ndim(thresholds) == 0:  # a Python float compares in the maps' dtype
        return probs > (0.5 if thresholds is None else float(thresholds))  # type: ignore[arg-type]
    values = [float(t) for t in np.asarray(thresholds).reshape(-1)]
    if len(values) != probs.shape[class_axis]:
        raise ValueError(f"{len(values)} thresholds for {probs.shape[class_axis]} channels")
    shape = [1] * probs.ndim
    shape[class_axis] = -1
    if isinstance(probs, torch.Tensor):
        return probs > torch.tensor(values, dtype=probs.dtype, device=probs.device).reshape(shape)
    return probs > np.asarray(values, dtype=probs.dtype).reshape(shape)


class Task:
    def __init__(self, kind: str, class_names: list[str] | tuple[str, ...], threshold: float = 0.5) -> None:
        if kind not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {kind!r}")
        if kind == "binary" and len(class_names) != 1:
            raise ValueError(f"a binary task has exactly one class name, got {list(class_names)}")
        self.kind = kind
        self.class_names = list(class_names)
        self.threshold = float(threshold)

    @property
    def out_channels(self) -> int:
        return len(self.class_names) + (1 if self.kind == "multiclass" else 0)

    @property
    def n_scored(self) -> int:
        return len(self.class_names)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1) if self.kind == "multiclass" else torch.sigmoid(logits)

    def discretize(self, probs: torch.Tensor, threshold: float | Sequence[float] | None = None) -> torch.Tensor:
        """Probabilities ``(B, C, ...)`` -> boolean foreground maps ``(B, K, ...)`` (:func:`discretize`;
        ``threshold``: one, or one per channel; ``None``: the task's)."""
        return discretize(self.kind, probs, self.threshold if threshold is None else threshold, class_axis=1)

    def target_to_binary(self, mask: torch.Tensor) -> torch.Tensor:
        """Dataset mask -> boolean ``(B, K, ...)``; binary/multiclass masks are ``(B, ...)`` indices."""
        if self.kind == "multilabel":
            return mask.bool()
        if self.kind == "binary":
            return (mask > 0).unsqueeze(1)
        return torch.stack([mask == k for k in range(1, self.out_channels)], dim=1)

    def loss_target(self, mask: torch.Tensor) -> torch.Tensor:
        """Dataset mask -> the target the losses take (see module docstring)."""
        if self.kind == "multiclass":
            return mask.long().unsqueeze(1)
        if self.kind == "binary":
            return (mask > 0).unsqueeze(1).float()
        return mask.float()
