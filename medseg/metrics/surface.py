"""Surface metrics with voxel spacing: 95th-percentile Hausdorff distance and normalised surface Dice.

Both follow MONAI's definitions exactly (``compute_hausdorff_distance(percentile=95)`` and
``compute_surface_dice`` without sub-voxel areas; the tests check agreement to 1e-6):

* the surface of a mask is its boundary voxels, ``mask XOR binary_erosion(mask)``
  (scipy's default cross-shaped structuring element, zero outside the image);
* distances are exact Euclidean distances in mm (``spacing`` per spatial axis) from each surface
  voxel of one mask to the nearest surface voxel of the other;
* HD95 is the larger of the two directed 95th percentiles (linear interpolation, as
  ``torch.quantile``); NSD is the fraction of both surfaces within ``tolerance`` mm of the other.

We compute the distances with one ``scipy.ndimage.distance_transform_edt`` per direction on the
bounding box of the union (MONAI 1.6 on CPU builds a KD-tree over the surface voxels instead). Both
are exact; the distance transform is faster on dense surfaces such as retinal vessels and the
29 hand-bone classes at 2048x2048 (see ``tests/metrics/test_surface.py`` for the cross-check and
``docs/evaluation.md`` for the measured timings), and it lets us state our own empty-mask rules.

Empty masks (documented conventions, different from MONAI's nan/inf):

* both empty: HD95 = 0.0 and NSD = 1.0 (nothing to find, nothing found);
* exactly one empty: HD95 = the diagonal of the image in mm (the largest distance possible
  inside it: a finite worst case, as the BraTS challenge scores it) and NSD = 0.0.

Signatures (shared with :mod:`medseg.metrics.overlap` and :mod:`medseg.metrics.image`): one mask,
``hd95(pred, target, *, roi=None, spacing=None, percentile=95.0) -> float`` and
``normalized_surface_dice(pred, target, *, roi=None, spacing=None, tolerance=1.0) -> float`` on
``(*spatial)`` boolean arrays; per class, ``surface_metrics(pred, target, *, roi=None, spacing=None,
tolerance=1.0, percentile=95.0, include_background=True, reduction="none")`` on ``(B, K, *spatial)``
returning torch tensors ``(B, K)``. Inputs may be numpy arrays or torch tensors (computed in numpy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from medseg.metrics._arrays import ArrayLike, as_bool_array
from medseg.metrics.reduction import apply_knobs

SURFACE_METRIC_NAMES = ("hd95", "nsd")


def _spacing(spacing: Sequence[float] | float | None, ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,)) if np.ndim(spacing) == 0 \
        else np.asarray(spacing, dtype=np.float64)
    if sp.shape != (ndim,):
        raise ValueError(f"spacing {tuple(sp)} does not match a {ndim}D mask")
    return sp


def _crop_union(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus a 1-voxel margin (as MONAI does)."""
    union = pred | target
    slices = []
    for ax in range(union.ndim):
        hit = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != ax)))
        slices.append(slice(max(hit[0] - 1, 0), min(hit[-1] + 2, union.shape[ax])))
    return pred[tuple(slices)], target[tuple(slices)]


def surface_edges(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a boolean mask: ``mask XOR erosion(mask)``."""
    return mask ^ ndimage.binary_erosion(mask)


def _masked(pred: ArrayLike, target: ArrayLike, roi: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_bool_array(pred), as_bool_array(target)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} != target shape {t.shape}")
    if roi is not None:
        r = as_bool_array(roi)
        p, t = p & r, t & r
    return p, t


def surface_distances(
    pred: ArrayLike, target: ArrayLike, *, spacing: Sequence[float] | float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of ``pred`` to the surface of ``target`` and back.

    Both masks must be non-empty boolean arrays of one shape."""
    p, t = as_bool_array(pred), as_bool_array(target)
    sp = _spacing(spacing, p.ndim)
    p, t = _crop_union(p, t)
    edge_p, edge_t = surface_edges(p), surface_edges(t)
    d_to_t = ndimage.distance_transform_edt(~edge_t, sampling=sp)
    d_to_p = ndimage.distance_transform_edt(~edge_p, sampling=sp)
    return d_to_t[edge_p], d_to_p[edge_t]


def image_diagonal(shape: Sequence[int], spacing: Sequence[float] | float | None = None) -> float:
    """Length (mm) of the image diagonal: the HD95 given when exactly one mask is empty."""
    sp = _spacing(spacing, len(shape))
    return float(np.sqrt((((np.asarray(shape) - 1) * sp) ** 2).sum()))


def _one_mask(
    p: np.ndarray, t: np.ndarray, spacing: Sequence[float] | float | None, tolerance: float, percentile: float
) -> tuple[float, float]:
    """``(hd, nsd)`` of two masks, one distance computation for both."""
    p_any, t_any = bool(p.any()), bool(t.any())
    if not p_any and not t_any:
        return 0.0, 1.0
    if p_any != t_any:
        return image_diagonal(p.shape, spacing), 0.0
    d_pt, d_tp = surface_distances(p, t, spacing=spacing)
    hd = float(max(np.percentile(d_pt, percentile), np.percentile(d_tp, percentile)))
    nsd = float(((d_pt <= tolerance).sum() + (d_tp <= tolerance).sum()) / (d_pt.size + d_tp.size))
    return hd, nsd


def hd95(
    pred: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None,
    spacing: Sequence[float] | float | None = None, percentile: float = 95.0,
) -> float:
    """Symmetric ``percentile`` Hausdorff distance (mm) between two boolean masks (2D or 3D),
    inside ``roi`` when given."""
    p, t = _masked(pred, target, roi)
    return _one_mask(p, t, spacing, 0.0, percentile)[0]


def normalized_surface_dice(
    pred: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None,
    spacing: Sequence[float] | float | None = None, tolerance: float = 1.0,
) -> float:
    """Fraction of both surfaces lying within ``tolerance`` mm of the other surface (Nikolov et al.),
    inside ``roi`` when given."""
    p, t = _masked(pred, target, roi)
    return _one_mask(p, t, spacing, tolerance, 95.0)[1]


def surface_metrics(
    pred: ArrayLike, target: ArrayLike, *, roi: ArrayLike | None = None,
    spacing: Sequence[float] | float | None = None, tolerance: float = 1.0, percentile: float = 95.0,
    include_background: bool = True, reduction: str = "none",
) -> dict[str, torch.Tensor]:
    """Per-sample, per-class HD95 and NSD for ``(B, K, *spatial)`` boolean maps; ``roi``
    (``(B, *spatial)``) masks both first. Returns ``{"hd95": (B, K), "nsd": (B, K)}`` (float64),
    reduced as MONAI's ``include_background``/``reduction`` say (:mod:`medseg.metrics.reduction`)."""
    p_all, t_all = as_bool_array(pred), as_bool_array(target)
    if p_all.shape != t_all.shape:
        raise ValueError(f"prediction shape {p_all.shape} != target shape {t_all.shape}")
    r_all = as_bool_array(roi) if roi is not None else None
    b, k = p_all.shape[:2]
    hd, nsd = torch.empty(b, k, dtype=torch.float64), torch.empty(b, k, dtype=torch.float64)
    for i in range(b):
        for c in range(k):
            p, t = _masked(p_all[i, c], t_all[i, c], r_all[i] if r_all is not None else None)
            hd[i, c], nsd[i, c] = _one_mask(p, t, spacing, tolerance, percentile)
    return apply_knobs({"hd95": hd, "nsd": nsd}, include_background, reduction)
