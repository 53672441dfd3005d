"""Soft-clDice: finite gradients in 2D and 3D, ~0 for a perfect prediction, and a broken vessel costs
more than a thickened one with the same number of wrong pixels."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from monai.losses import DiceLoss

from medseg.cli._hydra import config_dir
from medseg.losses.cldice import SoftClDice


def vessel() -> torch.Tensor:
    t = torch.zeros(1, 1, 32, 48)
    t[0, 0, 14:17, 4:44] = 1  # a 3-pixel-wide horizontal vessel
    return t


def logits_of(mask: torch.Tensor) -> torch.Tensor:
    return (mask * 2 - 1) * 10.0


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 1, 8, 12, 12)], ids=["2d", "3d"])
def test_gradient_is_finite_and_non_zero(shape):
    torch.manual_seed(0)
    logits = torch.randn(*shape, requires_grad=True)
    target = (torch.rand(*shape) > 0.7).float()
    value = SoftClDice()(logits, target)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_perfect_prediction_costs_almost_nothing():
    t = vessel()
    assert SoftClDice()(logits_of(t), t).item() < 1e-3
    wrong = SoftClDice()(logits_of(1 - t), t).item()
    assert wrong > 0.5


def test_broken_vessel_costs_more_than_thickened_one_with_equal_pixel_error():
    t = vessel()
    broken = t.clone()
    broken[0, 0, 14:17, 22:26] = 0  # a 4-column gap: 12 pixels missing, the vessel is in two pieces
    thick = t.clone()
    thick[0, 0, 17, 10:22] = 1  # 12 extra pixels along one side: still one vessel
    assert (broken != t).sum() == (thick != t).sum() == 12
    cl = SoftClDice()
    cl_broken, cl_thick = cl(logits_of(broken), t).item(), cl(logits_of(thick), t).item()
    assert cl_broken > 10 * cl_thick and cl_broken > 0.02
    # Dice barely tells the two apart: that is what clDice is for
    dice = DiceLoss(sigmoid=True)
    d_broken, d_thick = dice(logits_of(broken), t).item(), dice(logits_of(thick), t).item()
    assert d_broken < 1.5 * d_thick


def test_multiclass_index_targets_leave_the_background_out():
    t = torch.zeros(1, 1, 32, 48, dtype=torch.long)
    t[0, 0, 14:17, 4:44] = 1
    t[0, 0, 24:27, 4:44] = 2
    onehot = torch.nn.functional.one_hot(t[:, 0], 3).permute(0, 3, 1, 2).float()
    assert SoftClDice()(logits_of(onehot), t).item() < 1e-3
    cut = onehot.clone()
    cut[0, 2, 24:27, 20:24], cut[0, 0, 24:27, 20:24] = 0, 1  # class 2 broken
    assert SoftClDice()(logits_of(cut), t).item() > 0.02


def test_config_mixes_bce_dice_and_cldice():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["loss=bce_dice_cldice"])
    loss = instantiate(cfg.loss)
    t = vessel()
    value = loss(logits_of(t) * 0.1, t)
    assert set(loss.last_terms) == {"bce", "dice", "cldice"}
    expected = sum(loss.weights[k] * v for k, v in loss.last_terms.items())
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.weights["cldice"] == 0.5


def test_rejects_flat_inputs():
    with pytest.raises(ValueError, match="soft-clDice"):
        SoftClDice()(torch.zeros(2, 1, 8), torch.zeros(2, 1, 8))
