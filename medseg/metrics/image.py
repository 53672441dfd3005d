"""Metrics on probability maps: AUC-ROC (torchmetrics) and SSIM (torchmetrics), for vessel tasks.

Conventions:

* AUC is computed over the pixels inside ``roi`` (the field of view) when one is given. It is
  undefined when the target inside the ROI is all one class: ``nan`` (left out of means).
* SSIM compares the foreground probability map with the binary ground truth (data range 1, Gaussian
  window 11, sigma 1.5: torchmetrics' defaults), as the chained-U-Net predecessor project reports it. Outside the
  ROI both maps are set to 0, so the black border of fundus images does not inflate the score.

Signatures (shared with :mod:`medseg.metrics.overlap`/:mod:`~medseg.metrics.surface`, probabilities
in place of the prediction): ``auc_roc(probs, target, *, roi=None) -> float`` and ``ssim(...)`` on one
class ``(*spatial)``; ``image_metrics(probs, target, *, roi=None, metrics=("auc", "ssim"),
include_background=True, reduction="none")`` on ``(B, K, *spatial)`` returning torch tensors
``(B, K)``. Inputs may be numpy arrays or torch tensors (computed in torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.functional.image import structural_similarity_index_measure

from medseg.metrics._arrays import ArrayLike, as_tensor
from medseg.metrics.reduction import apply_knobs

IMAGE_METRIC_NAMES = ("auc", "ssim")


def auc_roc(probs: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None) -> float:
    """Area under the ROC curve of one class's probabilities ``(*spatial)`` against a boolean target."""
    p, t = as_tensor(probs).reshape(-1).float(), as_tensor(target).reshape(-1).bool()
    if roi is not None:
        keep = as_tensor(roi).reshape(-1).bool()
        p, t = p[keep], t[keep]
    if t.numel() == 0 or bool(t.all()) or not bool(t.any()):
        return float("nan")
    auc = binary_auroc(p, t.long(), thresholds=None, validate_args=False)  # inputs checked above
    value: torch.Tensor = auc if isinstance(auc, torch.Tensor) else auc[0]
    return float(value)


def ssim(probs: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None) -> float:
    """Structural similarity of a probability map ``(H, W)`` or ``(D, H, W)`` and a boolean target."""
    # float32: CPU convolutions in float64 are an order of magnitude slower (29 classes at 2048x2048)
    p, t = as_tensor(probs).float(), as_tensor(target).float()
    if roi is not None:
        r = as_tensor(roi)
        p, t = p * r, t * r
    value = structural_similarity_index_measure(p[None, None], t[None, None], data_range=1.0)
    return float(value if isinstance(value, torch.Tensor) else value[0])


def image_metrics(
    probs: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None,
    metrics: Sequence[str] = IMAGE_METRIC_NAMES, include_background: bool = True, reduction: str = "none",
) -> dict[str, torch.Tensor]:
    """Per-sample, per-class ``metrics`` (AUC and/or SSIM) ``(B, K)`` for foreground probabilities
    ``(B, K, *spatial)``, a boolean target of that shape and ``roi`` ``(B, *spatial)``."""
    fns = {"auc": auc_roc, "ssim": ssim}
    unknown = set(metrics) - set(fns)
    if unknown:
        raise ValueError(f"unknown image metrics {sorted(unknown)}; choose from {list(fns)}")
    p, t = as_tensor(probs), as_tensor(target)
    if p.shape != t.shape:
        raise ValueError(f"probabilities shape {tuple(p.shape)} != target shape {tuple(t.shape)}")
    r = as_tensor(roi) if roi is not None else None
    b, k = p.shape[:2]
    out = {m: torch.tensor([[fns[m](p[i, c], t[i, c], roi=r[i] if r is not None else None) for c in range(k)]
                            for i in range(b)], dtype=torch.float64).reshape(b, k) for m in metrics}
    return apply_knobs(out, include_background, reduction)
