"""Chained U-Net -> residual U-Net (Francia et al. 2020)."""

from __future__ import annotations

import pytest
import torch

from medseg.models.chained_unet import ChainedUNet


@pytest.mark.parametrize("dims,shape", [(2, (2, 3, 32, 32)), (3, (1, 1, 8, 8, 8))])
def test_shapes_and_gradient_reach_first_network(dims, shape):
    net = ChainedUNet(shape[1], 2, spatial_dims=dims, depth=2, base_channels=4)
    y = net(torch.randn(shape))
    assert y.shape == (shape[0], 2, *shape[2:])
    y.sum().backward()
    assert net.first.down[0].body[0].weight.grad.abs().sum() > 0


def test_second_network_keeps_first_networks_widths_and_is_residual():
    net = ChainedUNet(1, 2, depth=3, base_channels=8)
    assert net.second.widths == net.first.widths == [8, 16, 32, 64]
    assert net.second.down[0].body[0].in_channels == net.first.out_features
    assert all(b.shortcut is not None for b in net.second.down)
    assert all(b.shortcut is None for b in net.first.down)


def test_supervise_both_returns_two_outputs_in_training_only():
    net = ChainedUNet(1, 2, depth=2, base_channels=4, supervise_both=True).train()
    out = net(torch.randn(2, 1, 16, 16))
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == out[1].shape == (2, 2, 16, 16)
    assert not torch.equal(out[0], out[1])
    net.eval()
    assert isinstance(net(torch.randn(1, 1, 16, 16)), torch.Tensor)
