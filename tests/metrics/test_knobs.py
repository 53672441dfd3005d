"""include_background and reduction mean what MONAI's do: compared with monai.metrics on small masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDiceMetric

from medseg.metrics import dice, hd95, normalized_surface_dice, overlap_metrics, surface_metrics

REDUCTIONS = ["none", "mean", "sum", "mean_batch", "sum_batch", "mean_channel", "sum_channel"]


def masks(seed: int, shape=(2, 3, 24, 24)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random blob masks, never empty (MONAI's nan for empty targets would hide differences)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.random(shape), (0, 0, 2, 2)) > 0.5
    b = ndimage.gaussian_filter(rng.random(shape), (0, 0, 2, 2)) > 0.5
    a[..., 0, 0] = b[..., -1, -1] = True
    return torch.from_numpy(a), torch.from_numpy(b)


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dice_knobs_match_monai(include_background, reduction):
    pred, target = masks(0)
    ours = dice(pred, target, include_background=include_background, reduction=reduction)
    ref = DiceMetric(include_background=include_background, reduction=reduction)(pred.float(), target.float())
    if reduction != "none":
        ref = DiceMetric(include_background=include_background, reduction=reduction)
        ref(pred.float(), target.float())
        ref = ref.aggregate()
    assert ours.shape == ref.shape
    assert torch.allclose(ours.float(), ref.float(), atol=1e-6), (ours, ref)


def test_reduction_skips_nan_like_monai():
    pred, target = masks(1)
    values = overlap_metrics(pred, target)["dice"].clone()
    values[0, 1] = float("nan")
    from medseg.metrics import reduce_metric

    assert torch.isclose(reduce_metric(values, "mean_batch")[1], values[1, 1].float())
    with pytest.raises(ValueError, match="reduction"):
        reduce_metric(values, "median")


@pytest.mark.parametrize("include_background,reduction", [(False, "none"), (True, "mean_batch"), (False, "mean")])
def test_surface_knobs_match_monai(include_background, reduction):
    pred, target = masks(2)
    spacing = (0.5, 1.5)
    ours = surface_metrics(pred, target, spacing=spacing, tolerance=1.0,
                           include_background=include_background, reduction=reduction)
    hd = HausdorffDistanceMetric(include_background=include_background, percentile=95, reduction=reduction)
    hd(pred, target, spacing=spacing)
    nsd = SurfaceDiceMetric([1.0] * (3 if include_background else 2), include_background=include_background, reduction=reduction)
    nsd(pred, target, spacing=spacing)
    assert torch.allclose(ours["hd95"].float(), hd.aggregate().float(), atol=1e-5)
    assert torch.allclose(ours["nsd"].float(), nsd.aggregate().float(), atol=1e-5)
    if reduction == "none":
        assert ours["hd95"].shape == (2, 3 if include_background else 2)


def test_one_mask_functions_share_signature_and_roi():
    pred, target = masks(3)
    p, t = pred[0, 0], target[0, 0]
    roi = torch.zeros_like(p)
    roi[:, :12] = True
    per_class = surface_metrics(pred[:1, :1], target[:1, :1], roi=roi[None], spacing=(1.0, 2.0), tolerance=2.0)
    assert hd95(p, t, roi=roi, spacing=(1.0, 2.0)) == pytest.approx(float(per_class["hd95"][0, 0]))
    assert normalized_surface_dice(p.numpy(), t.numpy(), roi=roi.numpy(), spacing=(1.0, 2.0), tolerance=2.0) \
        == pytest.approx(float(per_class["nsd"][0, 0]))
    assert hd95(p, t, roi=roi) != hd95(p, t)  # the ROI is applied
