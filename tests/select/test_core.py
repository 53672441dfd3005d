"""The selection math on constructed arrays: each rule is accepted where the data is built so that it
helps and rejected where it hurts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import DataError
from medseg.select import core
from medseg.select.oof import Source, check_compatible
from medseg.tasks import Task


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _blob_cases(n=6, specks=True, two_objects=False, seed=0):
    """Binary cases: a disk (or two disks) as the label; the prediction is the label plus, optionally,
    isolated false-positive specks of 1-2 pixels."""
    rng = np.random.default_rng(seed)
    probs, targets = [], []
    for i in range(n):
        t = _disk((48, 48), (16 + i % 3, 16), 7)
        if two_objects:
            t |= _disk((48, 48), (34, 34), 4)
        p = np.where(t, 0.9, 0.05).astype(np.float32)
        if specks:
            for _ in range(12):
                y, x = rng.integers(30, 46, 2) if not two_objects else rng.integers(2, 12, 2) + [0, 30]
                p[y, x] = 0.95
        probs.append(p[None])
        targets.append(t[None])
    return probs, targets, [None] * n


def test_postprocessing_that_helps_is_accepted():
    probs, targets, rois = _blob_cases(specks=True)
    choices, final = core.choose_postprocessing("binary", probs, targets, rois, [0.5], [1.0] * len(probs))
    base = core.case_dice("binary", probs, targets, rois, [0.5])
    assert choices[0].rule["rule"] in ("largest", "min_size")
    assert choices[0].gain > 0.01 and final.mean() > base.mean() + 0.01
    assert final.mean() == pytest.approx(1.0)  # the specks were the only error


def test_postprocessing_that_hurts_is_rejected():
    # the label has two objects (keep-largest deletes the small one) and no specks (nothing to remove)
    probs, targets, rois = _blob_cases(specks=False, two_objects=True)
    choices, final = core.choose_postprocessing("binary", probs, targets, rois, [0.5], [1.0] * len(probs))
    assert choices[0].rule == {"rule": "none"}
    assert choices[0].tried["keep largest component"] < -0.05  # it was tried and measured as harmful
    np.testing.assert_allclose(final, core.case_dice("binary", probs, targets, rois, [0.5]))


def test_extra_min_size_cutoffs_are_tried_and_kept_only_where_they_help():
    # two true objects (49 and 149 px) and specks of 1-2 px: a 3 px cut-off removes only the specks,
    # a 100 px one also the small object, which keep-largest deletes too
    probs, targets, rois = _blob_cases(specks=True, two_objects=True)
    base = core.case_dice("binary", probs, targets, rois, [0.5])
    choices, final = core.choose_postprocessing("binary", probs, targets, rois, [0.5], [1.0] * len(probs),
                                                min_sizes=(3, 100))
    tried = choices[0].tried
    assert tried["remove components < 3 px"] > 0.01
    assert tried["remove components < 100 px"] < -0.05 and tried["keep largest component"] < -0.05
    assert choices[0].rule["rule"] == "min_size" and choices[0].rule["min_size"] < 50
    assert final.mean() == pytest.approx(1.0) and final.mean() > base.mean() + 0.01


def test_min_size_cutoffs_come_from_the_training_masks_in_full_resolution_units():
    t = np.zeros((1, 20, 20), bool)
    t[0, :4, :4] = True      # 16 px
    t[0, 10:12, 10:12] = True  # 4 px
    sizes = core.learned_min_sizes([t], [4.0], 0)  # stored maps downsampled 2x per side: x4 in area
    assert min(sizes) >= 4 * 4 - 1e-9 and max(sizes) <= 16 * 4


def test_threshold_differs_from_half_when_the_model_is_under_confident():
    rng = np.random.default_rng(1)
    probs, targets = [], []
    for _ in range(5):
        t = rng.random((32, 32)) < 0.2
        p = np.where(t, rng.uniform(0.25, 0.45, t.shape), rng.uniform(0.0, 0.2, t.shape)).astype(np.float32)
        probs.append(p[None])
        targets.append(t[None])
    thr, dice = core.fit_thresholds(probs, targets, [None] * 5)
    assert 0.2 <= thr[0] <= 0.25 + 1e-9
    at_half = core.case_dice("binary", probs, targets, [None] * 5, [0.5]).mean()
    assert at_half == 0.0 and dice[0] == pytest.approx(1.0)
    exact = core.case_dice("binary", probs, targets, [None] * 5, thr).mean()
    assert exact == pytest.approx(1.0)


def test_thresholds_are_per_class_for_multilabel():
    rng = np.random.default_rng(2)
    t = rng.random((2, 32, 32)) < 0.3
    p = np.stack([np.where(t[0], 0.3, 0.1), np.where(t[1], 0.8, 0.6)]).astype(np.float32)
    thr, _ = core.fit_thresholds([p], [t], [None])
    assert 0.1 <= thr[0] < 0.3 and 0.6 <= thr[1] < 0.8


def _overconfident(seed=0, n=4, scale=4.0):
    rng = np.random.default_rng(seed)
    logits, probs, targets = [], [], []
    for _ in range(n):
        true_logit = rng.normal(0, 1.5, (1, 64, 64))
        y = rng.random(true_logit.shape) < 1 / (1 + np.exp(-true_logit))
        z = (scale * true_logit).astype(np.float32)  # the model's logits: `scale` times too sharp
        logits.append(z)
        probs.append(1 / (1 + np.exp(-z)))
        targets.append(y)
    return logits, probs, targets


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    logits, probs, targets = _overconfident()
    rois = [None] * len(targets)
    temperature = core.fit_temperature("binary", logits, targets, rois)
    assert temperature == pytest.approx(4.0, rel=0.15)
    before = core.reliability("binary", probs, targets, rois)
    after = core.reliability("binary", [1 / (1 + np.exp(-z / temperature)) for z in logits], targets, rois)
    assert before.ece > 0.1 and after.ece < before.ece / 3


def test_temperature_of_a_calibrated_model_stays_near_one():
    logits, _, targets = _overconfident(scale=1.0, seed=3)
    assert core.fit_temperature("binary", logits, targets, [None] * len(targets)) == pytest.approx(1.0, abs=0.15)


def test_multiclass_temperature_and_ece():
    rng = np.random.default_rng(4)
    logits, targets = [], []
    for _ in range(3):
        true = rng.normal(0, 1.0, (3, 32, 32))
        p = np.exp(true) / np.exp(true).sum(0)
        u = rng.random((32, 32))
        lab = (u > p[0]).astype(int) + (u > p[0] + p[1]).astype(int)
        logits.append((3.0 * true).astype(np.float32))
        targets.append(np.stack([lab == 1, lab == 2]))
    t = core.fit_temperature("multiclass", logits, targets, [None] * 3)
    assert t == pytest.approx(3.0, rel=0.2)


def test_greedy_ensemble_combines_complementary_candidates():
    # candidate A is right on the left half, B on the right half; their mean is right everywhere
    t = np.zeros((1, 16, 16), bool)
    t[0, 4:12, 2:14] = True
    a = np.where(t, 0.9, 0.1).astype(np.float32)
    b = a.copy()
    a[0, :, 8:] = np.where(t[0, :, 8:], 0.45, 0.1)
    b[0, :, :8] = np.where(t[0, :, :8], 0.45, 0.1)
    c = np.full_like(a, 0.2)  # a useless third candidate
    res = core.greedy_ensemble("binary", [[a], [b], [c]], [t], [None])
    assert res.counts[2] == 0 and res.counts[0] > 0 and res.counts[1] > 0
    assert res.history[-1][1] == pytest.approx(1.0)


def _source(name, kind="binary", classes=("vessel",), folds=None, root="/data/DRIVE"):
    return Source(name, Path(f"/runs/{name}"), "kfold", Task(kind, list(classes)), {"data": {"root": root}},
                  folds=folds or {"a": 0, "b": 1})


def test_selection_refuses_sources_on_other_splits_or_tasks_naming_them():
    check_compatible([_source("one"), _source("two")])
    with pytest.raises(DataError, match=r"/runs/one.*/runs/two.*different folds"):
        check_compatible([_source("one"), _source("two", folds={"a": 1, "b": 0})])
    with pytest.raises(DataError, match=r"/runs/two.*multilabel"):
        check_compatible([_source("one"), _source("two", "multilabel", ("a", "b"))])
    with pytest.raises(DataError, match="data.root"):
        check_compatible([_source("one"), _source("two", root="/other")])
