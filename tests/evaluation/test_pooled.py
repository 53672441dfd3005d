"""Dataset-level (pooled) metrics in the evaluation table and the run report (binary tasks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.data.case import Case
from medseg.evaluation import EvaluationTable, evaluate_cases
from medseg.report.run import report_markdown
from medseg.tasks import Task


def cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    out = []
    for k, size in enumerate([(12, 10), (9, 14), (16, 16)]):
        mask = (rng.random(size) < 0.3).astype(np.int64)
        roi = np.ones(size, bool)
        roi[0] = False  # the first row lies outside the field of view
        image = rng.random((1, *size)).astype(np.float32)
        out.append(Case(f"c{k}", image, mask, roi=roi))
    return out


def probs_of(case: Case) -> torch.Tensor:
    """A noisy probability map that agrees with the mask most of the time (binary: one channel)."""
    rng = np.random.default_rng(len(case.case_id) + case.mask.size)
    p = np.clip(case.mask * 0.4 + rng.random(case.mask.shape) * 0.6, 0, 1).astype(np.float32)
    return torch.from_numpy(p)[None]


def test_pooled_counts_every_roi_pixel_of_the_split_once(tmp_path):
    from sklearn.metrics import roc_auc_score

    cs = cases()
    table = evaluate_cases(probs_of, Task("binary", ["vessel"]), cs, 0.5, metrics=[])
    p = np.concatenate([probs_of(c)[0].numpy()[c.roi] for c in cs])
    t = np.concatenate([c.mask.astype(bool)[c.roi] for c in cs])
    tp, fp = np.sum((p > 0.5) & t), np.sum((p > 0.5) & ~t)
    fn, tn = np.sum(~(p > 0.5) & t), np.sum(~(p > 0.5) & ~t)
    row = table.pooled.loc["vessel"]
    assert row["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert row["specificity"] == pytest.approx(tn / (tn + fp))
    assert row["accuracy"] == pytest.approx((tp + tn) / t.size)
    assert row["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert abs(row["auc"] - roc_auc_score(t, p)) <= row["auc_error_bound"] + 1e-12
    # pooled is not the mean of the per-image values (the two conventions differ on unequal images)
    assert row["accuracy"] != pytest.approx(table.per_image["accuracy"].mean(), abs=1e-9)
    summary = table.summary()
    assert summary["test/pooled_f1"] == pytest.approx(row["f1"]) and "test/pooled_auc" in summary

    table.save(tmp_path)
    back = EvaluationTable.load(tmp_path)
    assert back.pooled.loc["vessel", "f1"] == pytest.approx(row["f1"], abs=1e-6)
    text = report_markdown(back, ["vessel"], "t", tmp_path)
    assert "## Dataset level (pooled over all pixels)" in text and "per-image convention" in text


def test_multilabel_tables_have_no_pooled_section():
    masks = [np.stack([c.mask, 1 - c.mask]).astype(bool) for c in cases()]
    cs = [Case(c.case_id, c.image, m) for c, m in zip(cases(), masks, strict=True)]
    table = evaluate_cases(lambda c: torch.from_numpy(c.mask.astype(np.float32)), Task("multilabel", ["a", "b"]),
                           cs, 0.5, metrics=[])
    assert table.pooled is None and not any(k.startswith("test/pooled") for k in table.summary())
    assert "Dataset level" not in report_markdown(table, ["a", "b"], "t", "/x")


def test_a_given_prediction_replaces_the_thresholded_counts_not_the_auc():
    from medseg.metrics.pooled import PooledMetrics

    rng = np.random.default_rng(3)
    probs = rng.random((1, 8, 8)).astype(np.float32)
    target = rng.random((1, 8, 8)) > 0.6
    pred = np.zeros((1, 8, 8), bool)
    pred[0, :4] = True
    roi = np.ones((8, 8), bool)
    roi[:, 0] = False
    given, thresholded = PooledMetrics(1), PooledMetrics(1)
    given.update(probs, target, roi, pred=pred)
    thresholded.update(probs, target, roi)
    p, t = pred[0][roi], target[0][roi]
    tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
    assert given.counts.tolist() == [[tp, fp, fn, roi.sum() - tp - fp - fn]]
    assert given.compute()["f1"][0] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert given.compute()["f1"][0] != pytest.approx(thresholded.compute()["f1"][0])
    assert given.compute()["auc"][0] == thresholded.compute()["auc"][0]
    with pytest.raises(ValueError, match="prediction shape"):
        given.update(probs, target, pred=pred[:, :4])
