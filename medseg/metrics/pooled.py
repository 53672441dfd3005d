"""Dataset-level (pooled) metrics: every ROI pixel of every case of a split counted together.

This is how the DRIVE / CHASE_DB1 / STARE literature reports its tables (sensitivity, specificity,
accuracy, F1 and AUC over all field-of-view pixels of the test set), as opposed to medseg's
per-image means (:mod:`medseg.metrics.overlap`, averaged over cases). The two conventions give
different numbers; label every column with the one used.

:class:`PooledMetrics` is updated once per case and keeps, per class, only

* the confusion counts at ``threshold`` (``p > threshold`` is positive, as medseg's evaluation),
  exact int64 counts: F1, sensitivity, specificity and accuracy are exact;
* two histograms of the probabilities (``bins`` equal-width bins on [0, 1]) for positive and for
  negative pixels: the AUC.

Memory is ``O(K * bins)`` whatever the number and size of the images.

**AUC and its error bound.** The AUC is computed from the histograms as the Mann-Whitney statistic
of the binned scores (a pair in the same bin counts 1/2, i.e. the trapezoidal ROC through the bin
edges). It differs from the exact pixel AUC only through positive/negative pairs that fall in the
same bin, each of which the exact AUC counts 0 or 1, so::

    |AUC_binned - AUC_exact| <= 0.5 * sum_b pos_b * neg_b / (P * N)

``compute()`` returns this bound per class as ``auc_error_bound`` (it is computed from the same
histograms, so every AUC comes with its own guarantee; with 10,000 bins it is typically well under
1e-3 on fundus images). Probabilities that take at most one value per bin (e.g. the bin centres) give
the exact AUC.

Undefined values: the rules of :func:`medseg.metrics.overlap.metrics_from_confusion` (e.g. F1 of an
empty target and empty prediction is 1); AUC (and its bound) is ``nan`` when the pooled target has
only one class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medseg.metrics.overlap import metrics_from_confusion

POOLED_METRIC_NAMES = ("f1", "sensitivity", "specificity", "accuracy", "auc")


def _np(x: Any, dtype: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


class PooledMetrics:
    """Accumulates pooled confusion counts and probability histograms per class over a split.

    ``update(probs, target, roi)`` per case (``probs`` ``(K, *spatial)`` float foreground
    probabilities, ``target`` ``(K, *spatial)`` bool, ``roi`` ``spatial`` bool or ``None``); then
    ``compute()`` -> ``{name: (K,)}`` for :data:`POOLED_METRIC_NAMES` plus ``auc_error_bound``.
    """

    def __init__(self, num_classes: int, *, bins: int = 10000, threshold: float = 0.5) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.num_classes, self.bins, self.threshold = int(num_classes), int(bins), float(threshold)
        self.counts = np.zeros((self.num_classes, 4), dtype=np.int64)  # tp, fp, fn, tn
        self.pos_hist = np.zeros((self.num_classes, self.bins), dtype=np.int64)
        self.neg_hist = np.zeros((self.num_classes, self.bins), dtype=np.int64)
        self.cases = 0

    def update(self, probs: Any, target: Any, roi: Any | None = None, *, threshold: float | None = None,
               pred: Any | None = None) -> None:
        """Add one case's pixels (inside ``roi`` when given). ``threshold`` replaces the accumulator's for
        this case's confusion counts (a threshold chosen per fold); ``pred`` (boolean, the shape of
        ``target``) replaces the thresholded probabilities there altogether (a post-processed mask). The
        AUC depends on neither."""
        p = _np(probs, np.float32)
        t = _np(target, bool)
        if p.shape != t.shape:
            raise ValueError(f"probabilities shape {p.shape} != target shape {t.shape}")
        d = None if pred is None else _np(pred, bool)
        if d is not None and d.shape != t.shape:
            raise ValueError(f"prediction shape {d.shape} != target shape {t.shape}")
        if p.shape[0] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got {p.shape[0]} (shape {p.shape})")
        if not np.isfinite(p).all():
            raise ValueError("probabilities contain nan or inf")
        k = self.num_classes
        p, t = p.reshape(k, -1), t.reshape(k, -1)
        d = None if d is None else d.reshape(k, -1)
        if roi is not None:
            r = _np(roi, bool)
            if r.shape != probs.shape[1:]:
                raise ValueError(f"roi shape {r.shape} != spatial shape {tuple(probs.shape[1:])}")
            keep = r.reshape(-1)
            p, t = p[:, keep], t[:, keep]
            d = None if d is None else d[:, keep]
        pos = d if d is not None else p > (self.threshold if threshold is None else float(threshold))
        tp = (pos & t).sum(1)
        fp = (pos & ~t).sum(1)
        fn = (~pos & t).sum(1)
        tn = p.shape[1] - tp - fp - fn
        self.counts += np.stack([tp, fp, fn, tn], axis=1)
        idx = np.clip((p * self.bins).astype(np.int64), 0, self.bins - 1)
        idx += np.arange(k, dtype=np.int64)[:, None] * self.bins  # one bincount for all classes
        n = k * self.bins
        self.pos_hist += np.bincount(idx[t], minlength=n).reshape(k, self.bins)
        self.neg_hist += np.bincount(idx[~t], minlength=n).reshape(k, self.bins)
        self.cases += 1

    def merge(self, other: PooledMetrics) -> None:
        """Add another accumulator's counts (same classes, bins and threshold): folds, workers."""
        if (other.num_classes, other.bins, other.threshold) != (self.num_classes, self.bins, self.threshold):
            raise ValueError("cannot merge pooled metrics with different classes, bins or threshold")
        self.counts += other.counts
        self.pos_hist += other.pos_hist
        self.neg_hist += other.neg_hist
        self.cases += other.cases

    def auc(self) -> tuple[np.ndarray, np.ndarray]:
        """``(auc, error_bound)`` per class from the histograms (see the module docstring)."""
        pos, neg = self.pos_hist.astype(np.float64), self.neg_hist.astype(np.float64)
        n_pos, n_neg = pos.sum(1), neg.sum(1)
        neg_below = np.cumsum(neg, axis=1) - neg  # negatives in strictly lower bins
        wins = (pos * neg_below).sum(1) + 0.5 * (pos * neg).sum(1)
        ties = 0.5 * (pos * neg).sum(1)
        den = n_pos * n_neg
        ok = den > 0
        auc = np.where(ok, wins / np.where(ok, den, 1), np.nan)
        bound = np.where(ok, ties / np.where(ok, den, 1), np.nan)
        return auc, bound

    def compute(self) -> dict[str, np.ndarray]:
        """Pooled ``f1``, ``sensitivity``, ``specificity``, ``accuracy``, ``auc`` and ``auc_error_bound``,
        each ``(K,)``."""
        tp, fp, fn, tn = (torch.from_numpy(self.counts[:, i]) for i in range(4))
        m = metrics_from_confusion(tp, fp, fn, tn)
        auc, bound = self.auc()
        return {
            "f1": m["f1"].numpy(),
            "sensitivity": m["recall"].numpy(),
            "specificity": m["specificity"].numpy(),
            "accuracy": m["accuracy"].numpy(),
            "auc": auc,
            "auc_error_bound": bound,
        }
