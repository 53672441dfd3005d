from __future__ import annotations

import pytest
import torch

from medseg.inference.tta import tta_probs, tta_transforms


def test_2d_set_is_the_eight_symmetries_of_the_square():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    from medseg.inference.tta import _forward, _inverse

    images = {tuple(_forward(x, t).flatten().tolist()) for t in tta_transforms(2)}
    assert len(images) == 8
    for t in tta_transforms(2):
        assert torch.equal(_inverse(_forward(x, t), t), x)


@pytest.mark.parametrize("shape", [(1, 2, 8, 6), (1, 1, 4, 6, 5)])
def test_pixelwise_model_is_unchanged_by_tta(shape):
    x = torch.randn(shape)
    fn = lambda t: torch.sigmoid(3 * t)
    torch.testing.assert_close(tta_probs(fn, x), fn(x))
    assert len(tta_transforms(len(shape) - 2)) == 8  # D4 in 2D; identity + 7 flip combinations in 3D


def test_position_dependent_model_is_averaged_over_transforms():
    x = torch.zeros(1, 1, 4, 4)
    ramp = torch.linspace(0, 1, 4).expand(4, 4)
    fn = lambda t: t + ramp
    out = tta_probs(fn, x, flips=True, rot90=False)
    # mean of the ramp and its flips along H and W: constant 0.5 everywhere
    torch.testing.assert_close(out, torch.full_like(x, 0.5))
