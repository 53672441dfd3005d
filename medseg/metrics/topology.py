"""Topology metrics for thin structures (vessels): clDice and Betti-number errors, per class.

Inputs are ``(K, *spatial)`` boolean maps (numpy arrays or CPU tensors), 2D or 3D; ``roi``
(``spatial``, optional) masks prediction and target first (the field of view of fundus images).
Every function returns ``(K,)`` float arrays, like :func:`medseg.metrics.surface.surface_metrics`.

**clDice** (Shit et al., CVPR 2021). With ``S(X)`` the skeleton of mask ``X``
(``skimage.morphology.skeletonize``; Lee's 3D thinning for volumes):

* topology precision ``Tprec = |S(P) ∩ L| / |S(P)|`` (skeleton of the prediction inside the label),
* topology sensitivity ``Tsens = |S(L) ∩ P| / |S(L)|`` (skeleton of the label inside the prediction),
* ``clDice = 2 Tprec Tsens / (Tprec + Tsens)``.

A non-empty mask whose skeleton thinning returns nothing (skimage's 3D thinning erases a 2-voxel-thick
bar) is its own skeleton.

Empty masks follow Dice's convention in :mod:`medseg.metrics.overlap`: both empty -> 1.0 (nothing to
find, nothing found); exactly one empty -> 0.0; ``Tprec = Tsens = 0`` -> 0.0.

**Betti numbers** of the foreground ``X`` (inside the ROI):

* ``b0`` = connected components of ``X``, **8-connected in 2D, 26-connected in 3D**;
* ``b1`` = loops. In 2D: holes, the components of the background that do not reach the image border
  or any pixel outside the ROI, with the **4-connected** background (the complementary connectivity,
  so a diagonal step never both joins the foreground and separates the background). In 3D:
  ``b1 = b0 + b2 - chi``, with ``chi`` the Euler characteristic of ``X`` at 26-connectivity
  (``skimage.measure.euler_number(connectivity=3)``) and ``b2`` the cavities (6-connected background
  components enclosed as in 2D).

``betti_errors`` returns ``|b0(P) - b0(L)|`` and ``|b1(P) - b1(L)|`` per class; they are defined for
empty masks too (an empty mask has ``b0 = b1 = 0``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import euler_number
from skimage.morphology import skeletonize

TOPOLOGY_METRIC_NAMES = ("cldice", "betti0_error", "betti1_error")


def _np_bool(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=bool)


def _prepare(pred: Any, target: Any, roi: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    pred, target = _np_bool(pred), _np_bool(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} != target shape {target.shape}")
    if pred.ndim not in (3, 4):
        raise ValueError(f"expected (K, H, W) or (K, D, H, W) maps, got shape {pred.shape}")
    r = None
    if roi is not None:
        r = _np_bool(roi)
        if r.shape != pred.shape[1:]:
            raise ValueError(f"roi shape {r.shape} != spatial shape {pred.shape[1:]}")
        pred, target = pred & r[None], target & r[None]
    return pred, target, r


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Boolean skeleton of a 2D or 3D boolean mask (skimage; empty for an empty mask).

    skimage's 3D thinning can erase a thin object entirely (a 2x2-voxel bar has an empty skeleton);
    a non-empty mask whose skeleton comes back empty is then its own skeleton, so clDice stays
    defined and still counts every voxel of it."""
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    sk = skeletonize(mask).astype(bool)
    return sk if sk.any() else mask.copy()


def cldice_terms(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``(Tprec, Tsens)`` of one class; ``nan`` where the skeleton concerned is empty."""
    sp, st = skeleton(pred), skeleton(target)
    tprec = float((sp & target).sum() / sp.sum()) if sp.any() else float("nan")
    tsens = float((st & pred).sum() / st.sum()) if st.any() else float("nan")
    return tprec, tsens


def cldice(pred: Any, target: Any, *, roi: Any | None = None) -> np.ndarray:
    """Per-class clDice ``(K,)`` of boolean ``(K, *spatial)`` maps (definition in the module docstring)."""
    pred, target, _ = _prepare(pred, target, roi)
    out = np.empty(pred.shape[0])
    for k in range(pred.shape[0]):
        p_any, t_any = bool(pred[k].any()), bool(target[k].any())
        if not p_any and not t_any:
            out[k] = 1.0
            continue
        if p_any != t_any:
            out[k] = 0.0
            continue
        tprec, tsens = cldice_terms(pred[k], target[k])
        out[k] = 0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens)
    return out


def _enclosed_background(mask: np.ndarray, roi: np.ndarray | None) -> int:
    """Background components (face-connected) that touch neither the border nor the outside of the ROI."""
    background = ~mask
    labels, n = ndimage.label(background, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    if n == 0:
        return 0
    exterior = np.zeros(mask.shape, dtype=bool)
    for ax in range(mask.ndim):  # the image border, every face
        idx: list[Any] = [slice(None)] * mask.ndim
        idx[ax] = 0
        exterior[tuple(idx)] = True
        idx[ax] = -1
        exterior[tuple(idx)] = True
    if roi is not None:
        exterior |= ~roi
    outside = np.unique(labels[exterior & background])
    return int(n - np.count_nonzero(outside))


def betti_numbers(mask: Any, *, roi: Any | None = None) -> tuple[int, int]:
    """``(b0, b1)`` of one 2D or 3D boolean mask (connectivities in the module docstring)."""
    m = _np_bool(mask)
    r = None if roi is None else _np_bool(roi)
    if r is not None:
        m = m & r
    if m.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D mask, got shape {m.shape}")
    if not m.any():
        return 0, 0
    full = ndimage.generate_binary_structure(m.ndim, m.ndim)  # 8- / 26-connected foreground
    b0 = int(ndimage.label(m, structure=full)[1])
    holes = _enclosed_background(m, r)
    if m.ndim == 2:
        return b0, holes
    # 3D: chi = b0 - b1 + b2, with b2 the enclosed cavities
    chi = int(euler_number(m, connectivity=3))
    return b0, b0 + holes - chi


def betti_errors(pred: Any, target: Any, *, roi: Any | None = None) -> dict[str, np.ndarray]:
    """Per-class ``{"betti0_error": (K,), "betti1_error": (K,)}``: ``|b_i(P) - b_i(L)|``."""
    pred, target, r = _prepare(pred, target, roi)
    out = {"betti0_error": np.empty(pred.shape[0]), "betti1_error": np.empty(pred.shape[0])}
    for k in range(pred.shape[0]):
        bp, bt = betti_numbers(pred[k], roi=r), betti_numbers(target[k], roi=r)
        out["betti0_error"][k] = abs(bp[0] - bt[0])
        out["betti1_error"][k] = abs(bp[1] - bt[1])
    return out


def topology_metrics(pred: Any, target: Any, *, roi: Any | None = None) -> dict[str, np.ndarray]:
    """clDice and both Betti errors, per class: ``{name: (K,)}`` for :data:`TOPOLOGY_METRIC_NAMES`."""
    return {"cldice": cldice(pred, target, roi=roi), **betti_errors(pred, target, roi=roi)}
