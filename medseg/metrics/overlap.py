"""Overlap metrics from confusion counts: Dice, IoU, accuracy, precision, recall, specificity, F1.

Conventions (documented, tested):

* Counts are taken inside ``roi`` when one is given (the DRIVE field of view), else everywhere.
* Dice / IoU / F1: both prediction and target empty -> 1.0 (nothing to find, nothing found);
  target empty but prediction not, or the reverse -> 0.0.
* Precision with no predicted positives: 1.0 if the target is empty too, else 0.0.
  Recall with no true positives in the target: 1.0 if nothing was predicted, else 0.0.
  Specificity with no negatives: 1.0.
"""

from __future__ import annotations

import torch

METRIC_NAMES = ("dice", "iou", "accuracy", "precision", "recall", "specificity", "f1")


def confusion(
    pred: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample, per-class counts. ``pred``/``target``: bool ``(B, K, *spatial)``;
    ``roi``: bool ``(B, *spatial)`` or ``None``. Returns ``tp, fp, fn, tn`` of shape ``(B, K)``."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred, target = pred.bool(), target.bool()
    if roi is not None:
        roi = roi.bool().unsqueeze(1)
        pred, target = pred & roi, target & roi
        n = roi.flatten(2).sum(-1).expand(pred.shape[:2])
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


def metrics_from_confusion(tp, fp, fn, tn) -> dict[str, torch.Tensor]:
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


def overlap_metrics(pred, target, roi=None) -> dict[str, torch.Tensor]:
    """Per-sample, per-class metrics ``(B, K)`` for boolean maps."""
    return metrics_from_confusion(*confusion(pred, target, roi))
