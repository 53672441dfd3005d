"""Pooled (dataset-level) metrics against sklearn on the concatenated ROI pixels of all cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

from medseg.metrics.pooled import PooledMetrics


def cases(n: int = 4, k: int = 2, shape=(24, 20), seed: int = 0, quantise: int | None = None):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        target = rng.random((k, *shape)) < 0.2
        probs = np.clip(0.35 * target + rng.random((k, *shape)) * 0.75, 0, 1).astype(np.float32)
        if quantise:  # one value per bin: the bin centres
            probs = ((np.floor(probs * quantise).clip(0, quantise - 1) + 0.5) / quantise).astype(np.float32)
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        roi = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (min(shape) / 2.2) ** 2  # a disc FOV
        out.append((probs, target, roi))
    return out


def pooled_pixels(data, k: int):
    p = np.concatenate([probs[k][roi] for probs, _, roi in data])
    t = np.concatenate([target[k][roi] for _, target, roi in data])
    return p, t


def test_counts_match_sklearn_on_concatenated_roi_pixels():
    data = cases()
    acc = PooledMetrics(2, bins=1000)
    for probs, target, roi in data:
        acc.update(probs, target, roi)
    out = acc.compute()
    assert set(out) == {"f1", "sensitivity", "specificity", "accuracy", "auc", "auc_error_bound"}
    for k in range(2):
        p, t = pooled_pixels(data, k)
        pred = p > 0.5
        assert out["f1"][k] == pytest.approx(f1_score(t, pred), abs=1e-12)
        assert out["sensitivity"][k] == pytest.approx(recall_score(t, pred), abs=1e-12)
        assert out["specificity"][k] == pytest.approx(recall_score(~t, ~pred), abs=1e-12)
        assert out["accuracy"][k] == pytest.approx(accuracy_score(t, pred), abs=1e-12)
        exact = roc_auc_score(t, p)
        assert abs(out["auc"][k] - exact) <= out["auc_error_bound"][k] + 1e-12
        assert 0 < out["auc_error_bound"][k] < 2e-3


def test_auc_is_exact_when_each_bin_holds_one_value():
    data = cases(quantise=200, seed=1)
    acc = PooledMetrics(2, bins=200)
    for probs, target, roi in data:
        acc.update(torch.from_numpy(probs), torch.from_numpy(target), torch.from_numpy(roi))
    out = acc.compute()
    for k in range(2):
        p, t = pooled_pixels(data, k)
        assert out["auc"][k] == pytest.approx(roc_auc_score(t, p), abs=1e-12)


def test_pooled_differs_from_the_mean_of_per_image_values():
    # two cases of different sizes: pooling weights pixels, the per-image mean weights cases
    a_p, a_t = np.array([[0.9, 0.9, 0.1, 0.1]]), np.array([[1, 1, 0, 0]], bool)
    b_p, b_t = np.array([[0.9] + [0.1] * 11]), np.array([[1] * 4 + [0] * 8], bool)
    acc = PooledMetrics(1, bins=10)
    acc.update(a_p, a_t)
    acc.update(b_p, b_t)
    out = acc.compute()
    assert out["sensitivity"][0] == pytest.approx(3 / 6)  # pooled: 3 of 6 positives found
    assert (1.0 + 0.25) / 2 != pytest.approx(out["sensitivity"][0])  # per-image mean would be 0.625


def test_threshold_per_update():
    data = cases(n=2, k=1)
    acc = PooledMetrics(1, bins=100)
    acc.update(*data[0], threshold=0.3)
    acc.update(*data[1], threshold=0.7)
    p0, t0 = pooled_pixels(data[:1], 0)
    p1, t1 = pooled_pixels(data[1:], 0)
    pred = np.concatenate([p0 > 0.3, p1 > 0.7])
    t = np.concatenate([t0, t1])
    assert acc.compute()["f1"][0] == pytest.approx(f1_score(t, pred), abs=1e-12)


def test_merge_equals_one_accumulator_and_memory_is_bounded():
    data = cases(n=6)
    one, a, b = PooledMetrics(2, bins=500), PooledMetrics(2, bins=500), PooledMetrics(2, bins=500)
    for i, (probs, target, roi) in enumerate(data):
        one.update(probs, target, roi)
        (a if i % 2 else b).update(probs, target, roi)
    a.merge(b)
    for key, value in one.compute().items():
        np.testing.assert_array_equal(value, a.compute()[key])
    assert one.pos_hist.shape == one.neg_hist.shape == (2, 500)  # the state does not grow with the cases
    assert one.cases == 6


def test_undefined_auc_and_bad_input():
    acc = PooledMetrics(1, bins=10)
    acc.update(np.full((1, 4, 4), 0.2), np.zeros((1, 4, 4), bool))
    out = acc.compute()
    assert np.isnan(out["auc"][0]) and np.isnan(out["auc_error_bound"][0])
    assert out["specificity"][0] == 1.0 and out["f1"][0] == 1.0  # nothing to find, nothing found
    with pytest.raises(ValueError, match="classes"):
        acc.update(np.zeros((2, 4, 4)), np.zeros((2, 4, 4), bool))
    with pytest.raises(ValueError, match="roi shape"):
        acc.update(np.zeros((1, 4, 4)), np.zeros((1, 4, 4), bool), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="nan"):
        acc.update(np.full((1, 4, 4), np.nan), np.zeros((1, 4, 4), bool))
    with pytest.raises(ValueError, match="merge"):
        acc.merge(PooledMetrics(1, bins=20))
