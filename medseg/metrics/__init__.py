"""Segmentation metrics with one signature.

* one mask: ``fn(pred, target, *, roi=None, spacing=None, <own parameters>) -> float``
  (:func:`hd95`, :func:`normalized_surface_dice`; :func:`auc_roc` and :func:`ssim` take
  probabilities first);
* per class: ``fn(pred, target, *, roi=None, [spacing=None,] <own parameters>, include_background=True,
  reduction="none") -> {name: torch.Tensor (B, K)}`` on ``(B, K, *spatial)`` maps (:func:`overlap_metrics`,
  :func:`surface_metrics`, :func:`image_metrics`), with MONAI's ``include_background``/``reduction``;
* inputs may be numpy arrays or torch tensors everywhere;
* per case, as config objects (``conf/metrics/``): :class:`CaseMetric`, :func:`metrics_from_config`,
  :func:`compute_case_metrics`.
"""

import torch

from medseg.metrics._arrays import ArrayLike
from medseg.metrics.baselines import best_global_threshold
from medseg.metrics.case import (
    AUC,
    SSIM,
    CaseMetric,
    OverlapMetrics,
    SurfaceMetrics,
    TopologyMetrics,
    compute_case_metrics,
    default_case_metrics,
    metric_names,
    metrics_by_name,
    metrics_from_config,
    resolve_metrics,
)
from medseg.metrics.image import auc_roc, image_metrics, ssim
from medseg.metrics.overlap import METRIC_NAMES, confusion, metrics_from_confusion, overlap_metrics
from medseg.metrics.pooled import POOLED_METRIC_NAMES, PooledMetrics
from medseg.metrics.reduction import apply_knobs, reduce_metric
from medseg.metrics.running import MeanPerImageDice
from medseg.metrics.surface import (
    hd95,
    image_diagonal,
    normalized_surface_dice,
    surface_distances,
    surface_metrics,
)
from medseg.metrics.threshold import best_threshold
from medseg.metrics.topology import (
    TOPOLOGY_METRIC_NAMES,
    betti_errors,
    betti_numbers,
    cldice,
    cldice_terms,
    topology_metrics,
)


def dice(
    pred: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None,
    include_background: bool = True, reduction: str = "none",
) -> torch.Tensor:
    """Dice ``(B, K)`` of boolean maps ``(B, K, *spatial)`` (:func:`overlap_metrics`' ``"dice"``)."""
    return overlap_metrics(pred, target, roi=roi, include_background=include_background, reduction=reduction)["dice"]


__all__ = [
    "AUC", "METRIC_NAMES", "POOLED_METRIC_NAMES", "PooledMetrics", "SSIM", "TOPOLOGY_METRIC_NAMES",
    "TopologyMetrics", "betti_errors", "betti_numbers", "cldice", "cldice_terms", "topology_metrics", "CaseMetric", "MeanPerImageDice", "OverlapMetrics", "SurfaceMetrics",
    "apply_knobs", "auc_roc", "best_global_threshold", "best_threshold", "compute_case_metrics", "confusion",
    "default_case_metrics", "dice", "hd95", "image_diagonal", "image_metrics", "metric_names", "metrics_by_name",
    "metrics_from_config", "metrics_from_confusion", "normalized_surface_dice", "overlap_metrics", "reduce_metric",
    "resolve_metrics", "ssim", "surface_distances", "surface_metrics",
]
