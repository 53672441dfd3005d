"""Overlap metrics against MONAI (DiceMetric, MeanIoU, confusion-matrix metrics) and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, MeanIoU, compute_confusion_matrix_metric, get_confusion_matrix
from torchmetrics.functional.classification import binary_accuracy, binary_f1_score, binary_jaccard_index

from medseg.metrics.overlap import overlap_metrics


def random_masks(seed: int, shape=(3, 2, 24, 20), p=0.3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < p, torch.rand(shape, generator=g) < p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_iou_match_monai_on_random_masks(seed):
    pred, target = random_masks(seed)
    ours = overlap_metrics(pred, target)
    dice = DiceMetric(include_background=True, reduction="none")(pred.float(), target.float())
    iou = MeanIoU(include_background=True, reduction="none")(pred.float(), target.float())
    np.testing.assert_allclose(ours["dice"].numpy(), dice.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours["iou"].numpy(), iou.numpy(), atol=1e-6)


@pytest.mark.parametrize("name,monai_name", [("precision", "precision"), ("recall", "sensitivity"),
                                             ("specificity", "specificity"), ("accuracy", "accuracy")])
def test_confusion_metrics_match_monai(name, monai_name):
    pred, target = random_masks(5)
    ours = overlap_metrics(pred, target)[name]
    cm = get_confusion_matrix(pred.float(), target.float(), include_background=True)
    theirs = compute_confusion_matrix_metric(monai_name, cm)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6)


def test_match_torchmetrics_per_image():
    pred, target = random_masks(7, shape=(2, 1, 32, 32))
    ours = overlap_metrics(pred, target)
    for b in range(2):
        p, t = pred[b, 0].long(), target[b, 0].long()
        assert abs(float(ours["f1"][b, 0]) - float(binary_f1_score(p, t))) < 1e-6
        assert abs(float(ours["iou"][b, 0]) - float(binary_jaccard_index(p, t))) < 1e-6
        assert abs(float(ours["accuracy"][b, 0]) - float(binary_accuracy(p, t))) < 1e-6


def test_empty_mask_conventions():
    empty = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    some = empty.clone()
    some[0, 0, 2:4, 2:4] = True
    both = overlap_metrics(empty, empty)
    assert both["dice"].item() == 1.0 and both["iou"].item() == 1.0
    assert both["precision"].item() == 1.0 and both["recall"].item() == 1.0
    pred_only_empty = overlap_metrics(empty, some)
    assert pred_only_empty["dice"].item() == 0.0 and pred_only_empty["recall"].item() == 0.0
    assert pred_only_empty["precision"].item() == 0.0
    target_empty = overlap_metrics(some, empty)
    assert target_empty["dice"].item() == 0.0 and target_empty["recall"].item() == 0.0
    # MONAI agrees where it is defined (non-empty target, empty prediction): Dice 0
    d = DiceMetric(include_background=True, reduction="none")(empty.float(), some.float())
    assert d.item() == pred_only_empty["dice"].item()


def test_roi_restricts_counts():
    pred = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    target = pred.clone()
    pred[0, 0, 0, 0] = True  # a false positive outside the ROI
    roi = torch.ones(1, 8, 8, dtype=torch.bool)
    roi[0, 0, 0] = False
    target[0, 0, 4, 4] = pred[0, 0, 4, 4] = True
    assert overlap_metrics(pred, target)["dice"].item() < 1.0
    assert overlap_metrics(pred, target, roi=roi)["dice"].item() == 1.0


@pytest.mark.parametrize("case", ["full", "single_pixel", "disjoint"])
def test_edge_case_masks_match_monai(case):
    pred = torch.zeros(1, 1, 9, 7, dtype=torch.bool)
    target = pred.clone()
    if case == "full":
        pred[:], target[:] = True, True
    elif case == "single_pixel":
        pred[0, 0, 4, 3] = target[0, 0, 4, 3] = True
        pred[0, 0, 0, 0] = True
    else:
        pred[0, 0, :3] = True
        target[0, 0, 5:] = True
    ours = overlap_metrics(pred, target)
    dice = DiceMetric(include_background=True, reduction="none")(pred.float(), target.float())
    iou = MeanIoU(include_background=True, reduction="none")(pred.float(), target.float())
    assert abs(ours["dice"].item() - dice.item()) < 1e-6 and abs(ours["iou"].item() - iou.item()) < 1e-6
