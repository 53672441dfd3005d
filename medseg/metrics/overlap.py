"""Overlap metrics from confusion counts: Dice, IoU, accuracy, precision, recall, specificity, F1.

Conventions (documented, tested):

* Counts are taken inside ``roi`` when one is given (the DRIVE field of view), else everywhere.
* Dice / IoU / F1: both prediction and target empty -> 1.0 (nothing to find, nothing found);
  target empty but prediction not, or the reverse -> 0.0.
* Precision with no predicted positives: 1.0 if the target is empty too, else 0.0.
  Recall with no true positives in the target: 1.0 if nothing was predicted, else 0.0.
  Specificity with no negatives: 1.0.

Signature shared with the other per-class metrics (:mod:`medseg.metrics`):
``overlap_metrics(pred, target, *, roi=None, include_background=True, reduction="none")`` with
boolean ``(B, K, *spatial)`` maps (torch tensors or numpy arrays) and ``roi`` ``(B, *spatial)``;
returns torch tensors ``(B, K)`` (or reduced, :mod:`medseg.metrics.reduction`).
"""

from __future__ import annotations

import torch

from medseg.metrics._arrays import ArrayLike, as_tensor
from medseg.metrics.reduction import apply_knobs

METRIC_NAMES = ("dice", "iou", "accuracy", "precision", "recall", "specificity", "f1")


def confusion(
    pred: ArrayLike, target: ArrayLike, roi: ArrayLike | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample, per-class counts. ``pred``/``target``: bool ``(B, K, *spatial)``;
    ``roi``: bool ``(B, *spatial)`` or ``None``. Returns ``tp, fp, fn, tn`` of shape ``(B, K)``."""
    pred, target = as_tensor(pred), as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred, target = pred.bool(), target.bool()
    if roi is not None:
        r = as_tensor(roi).bool().unsqueeze(1)
        pred, target = pred & r, target & r
        n = r.flatten(2).sum(-1).expand(pred.shape[:2])
    else:
        n = torch.full(pred.shape[:2], pred[0, 0].numel(), device=pred.device)
    dims = tuple(range(2, pred.ndim))
    tp = (pred & target).sum(dims)
    fp = (pred & ~target).sum(dims)
    fn = (~pred & target).sum(dims)
    tn = n - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(num: torch.Tensor, den: torch.Tensor, if_empty: torch.Tensor) -> torch.Tensor:
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp(min=1), if_empty.double())


def metrics_from_confusion(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, tn: torch.Tensor
) -> dict[str, torch.Tensor]:
    """All metrics of :data:`METRIC_NAMES` from confusion counts (any matching shapes)."""
    both_empty = (tp + fp + fn) == 0
    no_pred_fp = (fp == 0)
    no_miss = (fn == 0)
    dice = _ratio(2 * tp, 2 * tp + fp + fn, both_empty)
    return {
        "dice": dice,
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn, torch.ones_like(both_empty)),
        "precision": _ratio(tp, tp + fp, no_miss),
        "recall": _ratio(tp, tp + fn, no_pred_fp),
        "specificity": _ratio(tn, tn + fp, torch.ones_like(both_empty)),
        "f1": dice.clone(),
    }


def overlap_metrics(
    pred: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None,
    include_background: bool = True, reduction: str = "none",
) -> dict[str, torch.Tensor]:
    """Per-sample, per-class metrics ``(B, K)`` for boolean maps ``(B, K, *spatial)``;
    ``include_background``/``reduction`` as MONAI's (:mod:`medseg.metrics.reduction`)."""
    return apply_knobs(metrics_from_confusion(*confusion(pred, target, roi)), include_background, reduction)
