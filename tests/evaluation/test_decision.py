"""The decision every scorer applies (``threshold_decision``: threshold, then connected-component
post-processing) and a decision given by the caller (``TableBuilder(decide=)``, ``add(pred=)``): the
per-image metrics, the pooled counts and the returned prediction all follow it; the AUC reads the
probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.data.case import Case
from medseg.evaluation import TableBuilder, evaluate_cases, threshold_decision
from medseg.tasks import Task

TASK = Task("binary", ["vessel"])


def square_case() -> tuple[Case, torch.Tensor]:
    """A 4x4 target square, predicted at 0.9, plus a 2-pixel false-positive blob at 0.8 far from it."""
    mask = np.zeros((10, 10), np.int64)
    mask[1:5, 1:5] = 1
    probs = np.full((1, 10, 10), 0.1, np.float32)
    probs[0, 1:5, 1:5] = 0.9
    probs[0, 8, 7:9] = 0.8
    return Case("sq", np.zeros((1, 10, 10), np.float32), mask), torch.from_numpy(probs)


def test_threshold_decision_thresholds_then_post_processes():
    _, probs = square_case()
    plain = threshold_decision(TASK, 0.5)(probs)
    assert plain.dtype == torch.bool and plain.shape == (1, 10, 10) and int(plain.sum()) == 18
    assert int(threshold_decision(TASK, 0.85)(probs).sum()) == 16  # the blob is under this threshold
    kept = threshold_decision(TASK, 0.5, [{"rule": "largest"}])(probs)
    assert int(kept.sum()) == 16 and not kept[0, 8, 7]
    assert int(threshold_decision(TASK, 0.5, [{"rule": "min_size", "min_size": 3}])(probs).sum()) == 16
    assert int(threshold_decision(TASK, 0.5, [{"rule": "min_size", "min_size": 2}])(probs).sum()) == 18
    assert torch.equal(threshold_decision(TASK, 0.5, [{"rule": "none"}])(probs), plain)


def test_table_scores_the_post_processed_mask_and_pools_its_counts():
    case, probs = square_case()
    raw = evaluate_cases(lambda c: probs, TASK, [case], 0.5)
    post = evaluate_cases(lambda c: probs, TASK, [case], 0.5, decide=threshold_decision(TASK, 0.5, [{"rule": "largest"}]))
    assert raw.per_image.loc["sq", "dice"] == pytest.approx(2 * 16 / (18 + 16))
    assert post.per_image.loc["sq", "dice"] == pytest.approx(1.0)
    assert raw.pooled.loc["vessel", "f1"] == pytest.approx(2 * 16 / (18 + 16))
    assert post.pooled.loc["vessel", "f1"] == pytest.approx(1.0)
    assert post.pooled.loc["vessel", "specificity"] == pytest.approx(1.0)
    assert raw.pooled.loc["vessel", "specificity"] == pytest.approx(82 / 84)
    # the AUC ranks the probabilities, whatever the decision
    assert post.pooled.loc["vessel", "auc"] == pytest.approx(raw.pooled.loc["vessel", "auc"])


def test_builder_takes_a_decision_already_made_and_checks_its_shape():
    case, probs = square_case()
    builder = TableBuilder(TASK, 0.5)
    given = torch.zeros((1, 10, 10), dtype=torch.bool)
    given[0, 1:3, 1:5] = True  # half the square
    pred, target = builder.add("half", case, probs, pred=given)
    assert pred is given and int(target.sum()) == 16
    assert builder.tables()["half"].per_image.loc["sq", "dice"] == pytest.approx(2 * 8 / (8 + 16))
    with pytest.raises(ValueError, match="prediction shape"):
        builder.add("bad", case, probs, pred=torch.zeros((1, 10, 9), dtype=torch.bool))


def test_threshold_auto_is_chosen_for_the_post_processed_masks():
    """``threshold=auto`` with a post-processing rule picks the threshold that is best after the rule:
    a low threshold keeps a faint vessel border and a faint false blob; keeping the largest component
    removes the blob, so the low threshold wins, where without the rule a higher one does."""
    from medseg.evaluation import choose_threshold, resolve_threshold

    mask = np.zeros((20, 30), np.int64)
    mask[2:14, 2:14] = 1  # a 12x12 target: a 10x10 core at 0.9 in a 1-px ring at 0.4
    probs = np.full((1, 20, 30), 0.05, np.float32)
    probs[0, 2:14, 2:14] = 0.4
    probs[0, 3:13, 3:13] = 0.9
    probs[0, 2:10, 18:28] = 0.45  # an 80-pixel false blob, apart from the target
    case = Case("ring", np.zeros((1, 20, 30), np.float32), mask)
    fn = lambda _c: torch.from_numpy(probs)  # noqa: E731
    thr, dice = choose_threshold(TASK, fn, [case])
    assert thr == pytest.approx(0.5) and dice == pytest.approx(200 / 244)  # the core alone: 2*100 / (100 + 144)
    thr, dice = choose_threshold(TASK, fn, [case], [{"rule": "largest"}])
    assert thr == pytest.approx(0.35) and dice == pytest.approx(1.0)  # the whole target, the blob dropped
    thr, note = resolve_threshold(TASK, fn, [case], "auto", [{"rule": "largest"}])
    assert thr == pytest.approx(0.35) and "after the post-processing" in note
    assert resolve_threshold(TASK, fn, [case], "auto", [{"rule": "none"}])[0] == pytest.approx(0.5)
