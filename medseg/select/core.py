"""The selection math on out-of-fold arrays (no files, no models): scores, greedy ensembles, per-class
thresholds, connected-component postprocessing, temperature scaling and calibration error.

Conventions: ``probs[i]`` is case ``i``'s probability map ``(C, *spatial)`` (``C = K + 1`` with the
background first for multi-class tasks, ``C = K`` otherwise), ``targets[i]`` a boolean ``(K, *spatial)``
map, ``rois[i]`` a boolean ``(*spatial)`` scoring region or ``None``. Dice of a class that is empty in
both prediction and label is 1 (as everywhere in medseg); a case's score is its mean over classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from medseg.inference.postprocess import apply_rule, component_sizes, describe_rule
from medseg.tasks import discretize  # the decision rule of every command, here on numpy maps

#: candidate thresholds for binary / multi-label classes (the grid is wide: 0.05 .. 0.95)
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
#: percentiles of the training masks' component sizes tried as "remove smaller components" cut-offs
MIN_SIZE_PERCENTILES = (1, 5, 10)


def dice_per_class(pred: np.ndarray, target: np.ndarray, roi: np.ndarray | None) -> np.ndarray:
    """Dice per class ``(K,)`` of boolean ``(K, ...)`` maps inside ``roi``."""
    if roi is not None:
        pred, target = pred & roi, target & roi
    axes = tuple(range(1, pred.ndim))
    tp = (pred & target).sum(axes).astype(np.float64)
    fp = (pred & ~target).sum(axes)
    fn = (~pred & target).sum(axes)
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)


def case_dice(kind: str, probs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
              rois: Sequence[np.ndarray | None], thresholds: Sequence[float] | np.ndarray | None = None,
              rules: Sequence[dict | None] | None = None, area_scales: Sequence[float] | None = None) -> np.ndarray:
    """Per-case, per-class Dice ``(n, K)`` of the decision ``thresholds`` then postprocessing ``rules``."""
    out = []
    for i, (p, t, r) in enumerate(zip(probs, targets, rois)):
        pred = discretize(kind, p, thresholds)
        if rules is not None:
            scale = area_scales[i] if area_scales is not None else 1.0
            pred = np.stack([apply_rule(pred[k], rules[k], scale) for k in range(pred.shape[0])])
        out.append(dice_per_class(pred, t, r))
    return np.asarray(out)


def weighted_mean(member_probs: Sequence[np.ndarray], weights: Sequence[float] | np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    out = member_probs[0].astype(np.float32) * w[0]
    for p, wi in zip(member_probs[1:], w[1:]):
        if wi:
            out += p.astype(np.float32) * wi
    return out


@dataclass
class GreedyResult:
    counts: np.ndarray          # times each candidate was picked (weights = counts / sum)
    history: list[tuple[int, float]]  # (candidate picked, mean Dice after the pick)

    @property
    def weights(self) -> np.ndarray:
        return self.counts / self.counts.sum()


def greedy_ensemble(kind: str, cand_probs: Sequence[Sequence[np.ndarray]], targets, rois,
                    rounds: int = 10) -> GreedyResult:
    """Caruana et al. (2004) forward selection with replacement: start from the best single candidate,
    add (again, possibly) the candidate that raises mean OOF Dice most; stop when no pick helps or after
    ``rounds`` picks. ``cand_probs[m][i]``: candidate ``m`` on case ``i``."""
    n_c = len(cand_probs)
    n = len(targets)

    def score(counts: np.ndarray) -> float:
        sel = [m for m in range(n_c) if counts[m]]
        probs = [weighted_mean([cand_probs[m][i] for m in sel], counts[sel]) for i in range(n)]
        return float(np.nanmean(case_dice(kind, probs, targets, rois).mean(1)))

    counts = np.zeros(n_c)
    singles = []
    for m in range(n_c):
        c = np.zeros(n_c)
        c[m] = 1
        singles.append(score(c))
    first = int(np.argmax(singles))
    counts[first] = 1
    best, history = singles[first], [(first, singles[first])]
    for _ in range(rounds - 1):
        if n_c == 1:
            break
        trials = []
        for m in range(n_c):
            c = counts.copy()
            c[m] += 1
            trials.append(score(c))
        m = int(np.argmax(trials))
        if trials[m] <= best + 1e-9:
            break
        counts[m] += 1
        best = trials[m]
        history.append((m, best))
    return GreedyResult(counts, history)


def fit_thresholds(probs: Sequence[np.ndarray], targets, rois) -> tuple[np.ndarray, np.ndarray]:
    """Per-class threshold maximising mean (over cases) Dice of ``p > t`` on the grid
    :data:`THRESHOLD_GRID` (binary / multi-label). Each case's foreground and background probabilities
    are sorted once, so every threshold costs two binary searches. Among tied thresholds the median
    is taken (the middle of the best plateau: the largest margin either side). Returns
    ``(thresholds (K,), mean Dice at them (K,))``."""
    k_classes = targets[0].shape[0]
    thr, best = np.full(k_classes, 0.5), np.zeros(k_classes)
    for k in range(k_classes):
        dice = np.zeros(len(THRESHOLD_GRID))
        for p, t, r in zip(probs, targets, rois):
            pk, tk = p[k], t[k]
            if r is not None:
                pk, tk = pk[r], tk[r]
            fg, bg = np.sort(pk[tk].astype(np.float64)), np.sort(pk[~tk].astype(np.float64))
            grid = THRESHOLD_GRID.astype(pk.dtype).astype(np.float64)  # compare as the maps' dtype does
            tp = (fg.size - np.searchsorted(fg, grid, side="right")).astype(np.float64)
            fp = bg.size - np.searchsorted(bg, grid, side="right")
            fn = fg.size - tp
            den = 2 * tp + fp + fn
            dice += np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)
        dice /= len(probs)
        top = np.flatnonzero(dice >= dice.max() - 1e-12)
        j = int(top[len(top) // 2])
        thr[k], best[k] = float(THRESHOLD_GRID[j]), float(dice[j])
    return thr, best


def learned_min_sizes(targets: Sequence[np.ndarray], area_scales: Sequence[float], k: int) -> list[float]:
    """Candidate "remove smaller components" cut-offs for class ``k`` in full-resolution pixels: low
    percentiles (:data:`MIN_SIZE_PERCENTILES`) of the component sizes of the training-pool masks."""
    sizes = np.concatenate([component_sizes(t[k]) * s for t, s in zip(targets, area_scales)] or [np.zeros(0)])
    if sizes.size == 0:
        return []
    return sorted({float(max(2.0, np.percentile(sizes, q))) for q in MIN_SIZE_PERCENTILES})


@dataclass
class RuleChoice:
    rule: dict                   # {"rule": "none" | "largest" | "min_size", "min_size"?}
    gain: float                  # mean per-case Dice gain of this class over "none"
    tried: dict[str, float]      # candidate description -> mean gain


def choose_postprocessing(kind: str, probs, targets, rois, thresholds, area_scales,
                          min_gain: float = 0.0, min_sizes: Sequence[float] = ()) -> tuple[list[RuleChoice], np.ndarray]:
    """Per class: keep-largest-component or remove-small-components (sizes from the training masks,
    and the extra cut-offs ``min_sizes`` in full-resolution pixels), accepted only when it raises the
    class's mean OOF Dice by more than ``min_gain``. Returns the choices and the per-case, per-class
    Dice ``(n, K)`` with the accepted rules."""
    base = case_dice(kind, probs, targets, rois, thresholds)
    preds = [discretize(kind, p, thresholds) for p in probs]
    k_classes = base.shape[1]
    choices, final = [], base.copy()
    for k in range(k_classes):
        sizes = sorted({*learned_min_sizes(targets, area_scales, k), *map(float, min_sizes)})
        cands = [{"rule": "largest"}] + [{"rule": "min_size", "min_size": s} for s in sizes]
        tried: dict[str, float] = {}
        best_rule: dict = {"rule": "none"}
        best_gain, best_col = 0.0, base[:, k]
        for rule in cands:
            col = np.array([dice_per_class(apply_rule(pr[k], rule, s)[None], t[k:k + 1], r)[0]
                            for pr, t, r, s in zip(preds, targets, rois, area_scales)])
            gain = float(np.mean(col - base[:, k]))
            tried[describe_rule(rule)] = gain
            if gain > max(best_gain, min_gain) + 1e-9:
                best_rule, best_gain, best_col = rule, gain, col
        choices.append(RuleChoice(best_rule, best_gain, tried))
        final[:, k] = best_col
    return choices, final


def _flat_pixels(kind: str, logits, targets, rois, max_pixels: int, seed: int):
    """Sampled pixels: sigmoid tasks ``(z (N,), y (N,))`` over all classes; multi-class ``(Z (N, C), y (N,))``."""
    zs, ys = [], []
    for z, t, r in zip(logits, targets, rois):
        m = np.ones(t.shape[1:], bool) if r is None else r
        if kind == "multiclass":
            lab = np.where(t.any(0), t.argmax(0) + 1, 0)
            zs.append(z[:, m].T.astype(np.float32))
            ys.append(lab[m])
        else:
            zs.append(z[:, m].ravel().astype(np.float32))
            ys.append(t[:, m].ravel())
    z, y = np.concatenate(zs), np.concatenate(ys)
    if len(y) > max_pixels:
        idx = np.random.default_rng(seed).choice(len(y), max_pixels, replace=False)
        z, y = z[idx], y[idx]
    return z, y


def _nll(kind: str, z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    s = z / temperature
    if kind == "multiclass":
        s = s - s.max(1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())
    # BCE with logits, numerically stable
    return float(np.mean(np.maximum(s, 0) - s * y + np.log1p(np.exp(-np.abs(s)))))


def fit_temperature(kind: str, logits, targets, rois, max_pixels: int = 500_000, seed: int = 0) -> float:
    """The temperature ``T`` minimising the negative log-likelihood of ``softmax/sigmoid(logits / T)``
    on (a sample of) the OOF pixels inside the scoring region (Guo et al. 2017); ``T`` in [0.05, 20]."""
    z, y = _flat_pixels(kind, logits, targets, rois, max_pixels, seed)
    res = minimize_scalar(lambda lt: _nll(kind, z, y, float(np.exp(lt))), bounds=(np.log(0.05), np.log(20.0)),
                          method="bounded", options={"xatol": 1e-3})
    return float(np.exp(res.x))


@dataclass
class Reliability:
    ece: float
    confidence: np.ndarray     # mean predicted probability per bin (nan where empty)
    frequency: np.ndarray      # observed frequency per bin
    count: np.ndarray


def reliability(kind: str, probs, targets, rois, bins: int = 15, max_pixels: int = 2_000_000,
                seed: int = 0) -> Reliability:
    """Expected calibration error over ``bins`` equal-width bins. Binary / multi-label: every
    (pixel, class) probability against the label's frequency in its bin; multi-class: the top-label
    confidence against its accuracy."""
    if kind == "multiclass":
        logits = [np.log(np.clip(p, 1e-7, 1)) for p in probs]
        z, y = _flat_pixels(kind, logits, targets, rois, max_pixels, seed)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        conf, hit = p.max(1), (p.argmax(1) == y).astype(float)
    else:
        conf_list, hit_list = [], []
        for pr, t, r in zip(probs, targets, rois):
            m = np.ones(t.shape[1:], bool) if r is None else r
            conf_list.append(pr[:, m].ravel())
            hit_list.append(t[:, m].ravel().astype(float))
        conf, hit = np.concatenate(conf_list), np.concatenate(hit_list)
        if len(conf) > max_pixels:
            idx = np.random.default_rng(seed).choice(len(conf), max_pixels, replace=False)
            conf, hit = conf[idx], hit[idx]
    which = np.minimum((conf * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, conf, bins) / count
        freq = np.bincount(which, hit, bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] * np.abs(mean_conf[filled] - freq[filled])) / count.sum())
    return Reliability(ece, mean_conf, freq, count)


def entropy_map(kind: str, probs: np.ndarray) -> np.ndarray:
    """Predictive entropy per pixel (nats): softmax entropy, or the sum of per-class binary entropies."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    if kind == "multiclass":
        return -(p * np.log(p)).sum(0)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p)).sum(0)
