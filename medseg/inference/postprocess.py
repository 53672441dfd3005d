"""Connected-component postprocessing of predicted masks, per class, in 2D and 3D.

Rules (one per class, as chosen by ``medseg-select`` on out-of-fold predictions):

* ``none``: keep the mask as predicted;
* ``largest``: keep only the largest connected component (one organ per image, e.g. a lung field);
* ``min_size``: remove components smaller than ``min_size`` pixels/voxels (full-resolution units).

Components use full connectivity (8 in 2D, 26 in 3D) through ``connected-components-3d``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np
import torch

RULES = ("none", "largest", "min_size")


def _labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    if mask.ndim not in (2, 3):
        raise ValueError(f"postprocessing takes 2D or 3D masks, got shape {mask.shape}")
    labels, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool),
                                          connectivity=8 if mask.ndim == 2 else 26, return_N=True)
    return labels, int(n)


def component_sizes(mask: np.ndarray) -> np.ndarray:
    """Sizes (pixels/voxels) of the connected components of one boolean mask."""
    labels, n = _labels(mask)
    return np.bincount(labels.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, dtype=np.int64)


def keep_largest(mask: np.ndarray) -> np.ndarray:
    labels, n = _labels(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def remove_small(mask: np.ndarray, min_size: float) -> np.ndarray:
    labels, n = _labels(mask)
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def apply_rule(mask: np.ndarray, rule: dict | None, area_scale: float = 1.0) -> np.ndarray:
    """Apply one class's rule ``{"rule": ..., "min_size": ...}`` to a boolean mask. ``min_size`` is in
    full-resolution units; ``area_scale`` (full-resolution pixels per pixel of ``mask``) converts it
    for masks on a downsampled grid."""
    rule = rule or {}
    kind = rule.get("rule", "none")
    if kind == "none":
        return mask.astype(bool)
    if kind == "largest":
        return keep_largest(mask)
    if kind == "min_size":
        return remove_small(mask, float(rule["min_size"]) / area_scale)
    raise ValueError(f"unknown postprocessing rule {kind!r}; choose from {RULES}")


def postprocess(pred: torch.Tensor | np.ndarray, rules: Sequence[dict | None], area_scale: float = 1.0):
    """Apply per-class ``rules`` to a boolean prediction ``(K, *spatial)``; same type out."""
    arr = pred.numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if len(rules) != arr.shape[0]:
        raise ValueError(f"{len(rules)} postprocessing rules for {arr.shape[0]} classes")
    out = np.stack([apply_rule(arr[k], rules[k], area_scale) for k in range(arr.shape[0])])
    return torch.from_numpy(out) if isinstance(pred, torch.Tensor) else out
