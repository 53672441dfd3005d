"""Metrics on probability maps: AUC-ROC (torchmetrics) and SSIM (torchmetrics), for vessel tasks.

Conventions:

* AUC is computed over the pixels inside ``roi`` (the field of view) when one is given. It is
  undefined when the target inside the ROI is all one class: ``nan`` (left out of means).
* SSIM compares the foreground probability map with the binary ground truth (data range 1, Gaussian
  window 11, sigma 1.5: torchmetrics' defaults), as the chained-U-Net seed reports it. Outside the
  ROI both maps are set to 0, so the black border of fundus images does not inflate the score.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.functional.image import structural_similarity_index_measure

IMAGE_METRIC_NAMES = ("auc", "ssim")


def auc_roc(probs: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None) -> float:
    """Area under the ROC curve of one class's probabilities ``(*spatial)`` against a boolean target."""
    p, t = probs.reshape(-1).float(), target.reshape(-1).bool()
    if roi is not None:
        keep = roi.reshape(-1).bool()
        p, t = p[keep], t[keep]
    if t.numel() == 0 or bool(t.all()) or not bool(t.any()):
        return float("nan")
    return float(binary_auroc(p, t.long(), thresholds=None, validate_args=False))  # inputs checked above


def ssim(probs: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None) -> float:
    """Structural similarity of a probability map ``(H, W)`` or ``(D, H, W)`` and a boolean target."""
    # float32: CPU convolutions in float64 are an order of magnitude slower (29 classes at 2048x2048)
    p, t = probs.float(), target.float()
    if roi is not None:
        p, t = p * roi, t * roi
    return float(structural_similarity_index_measure(p[None, None], t[None, None], data_range=1.0))


def image_metrics(
    probs: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None,
    metrics: tuple[str, ...] = IMAGE_METRIC_NAMES,
) -> dict[str, np.ndarray]:
    """Per-class ``metrics`` (AUC and/or SSIM) for foreground probabilities ``(K, *spatial)`` and a
    boolean target ``(K, *spatial)``."""
    fns = {"auc": auc_roc, "ssim": ssim}
    return {m: np.array([fns[m](probs[k], target[k], roi) for k in range(probs.shape[0])]) for m in metrics}
