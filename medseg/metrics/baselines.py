"""Reference baselines a trained model must beat (a sanity check on the data, not a method)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.data.case import Case


def best_global_threshold(cases: Sequence[Case], channel: int = 1, n_thresholds: int = 256) -> dict[str, Any]:
    """The single intensity threshold (either polarity) on ``channel`` that maximises the mean
    per-image Dice over ``cases`` inside their ROI. For fundus images channel 1 is green, where
    vessels are darkest. Returns ``{"threshold", "polarity", "dice"}``.

    The search pools all images: one global rule, as a thresholding baseline would be applied.
    """
    values, targets, owners = [], [], []
    for i, c in enumerate(cases):
        if c.mask is None:
            raise ValueError(f"case {c.case_id} has no mask: the baseline needs labelled cases")
        ch = c.image[min(channel, c.image.shape[0] - 1)]
        roi = c.roi if c.roi is not None else np.ones(ch.shape, bool)
        fg: np.ndarray = np.asarray(c.mask > 0) if c.mask.ndim == ch.ndim else np.asarray(np.asarray(c.mask).any(0))
        values.append(ch[roi].ravel())
        targets.append(fg[roi].ravel())
        owners.append(np.full(int(roi.sum()), i))
    v, t, o = np.concatenate(values), np.concatenate(targets), np.concatenate(owners)
    n = len(cases)
    grid = np.unique(np.quantile(v, np.linspace(0.0, 1.0, n_thresholds)))
    pos_per_case = np.bincount(o, weights=t, minlength=n)
    best: dict[str, Any] = {"threshold": float("nan"), "polarity": "below", "dice": 0.0}
    for polarity in ("below", "above"):
        for thr in grid:
            pred = v <= thr if polarity == "below" else v >= thr
            tp = np.bincount(o, weights=pred & t, minlength=n)
            npred = np.bincount(o, weights=pred, minlength=n)
            den = npred + pos_per_case
            dice = np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0).mean()
            if dice > best["dice"]:
                best = {"threshold": float(thr), "polarity": polarity, "dice": float(dice)}
    return best
