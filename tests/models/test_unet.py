"""Classic, residual and 3D U-Nets: shapes, valid padding (crop-and-concatenate, overlap-tile
inference), gradients, and the brain-tumour predecessor project's 3D configuration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg.models.blocks import center_crop, mirror_pad
from medseg.models.unet import ResidualUNet, UNet


def first_conv(net: nn.Module) -> nn.Module:
    return next(m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))


@pytest.mark.parametrize("cls", [UNet, ResidualUNet])
@pytest.mark.parametrize("dims,shape", [(2, (2, 3, 32, 32)), (3, (1, 1, 16, 16, 16))])
@pytest.mark.parametrize("norm", ["none", "batch", "instance"])
def test_same_padding_shape_and_gradient(cls, dims, shape, norm):
    net = cls(shape[1], 4, spatial_dims=dims, depth=2, base_channels=4, norm=norm, dropout=0.1)
    y = net(torch.randn(shape))
    assert y.shape == (shape[0], 4, *shape[2:])
    y.sum().backward()
    grad = first_conv(net).weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_residual_unet_has_shortcuts_and_plain_has_none():
    res, plain = ResidualUNet(1, 1, depth=2, base_channels=4), UNet(1, 1, depth=2, base_channels=4)
    assert all(b.shortcut is not None for b in [*res.down, *res.up_blocks])
    assert all(b.shortcut is None for b in [*plain.down, *plain.up_blocks])
    assert sum(p.numel() for p in res.parameters()) > sum(p.numel() for p in plain.parameters())


def test_valid_padding_reproduces_ronneberger_sizes():
    net = UNet(1, 2, depth=4, base_channels=2, padding="valid")
    assert net.output_size(572) == 388  # the paper's Fig. 1
    assert net.valid_input_size(388) == 572
    assert net.output_size(570) is None


@pytest.mark.parametrize("residual", [False, True])
def test_valid_padding_training_output_is_smaller(residual):
    net = UNet(1, 2, depth=2, base_channels=4, padding="valid", residual=residual).train()
    y = net(torch.randn(2, 1, 60, 60))
    assert y.shape == (2, 2, 20, 20)
    y.sum().backward()
    assert first_conv(net).weight.grad.abs().sum() > 0


def test_valid_padding_bad_size_names_nearest_valid_sizes():
    net = UNet(1, 2, depth=2, base_channels=4, padding="valid").train()
    with pytest.raises(ValueError, match="nearest valid sides: 48 and 52"):
        net(torch.randn(1, 1, 50, 50))


def test_valid_padding_eval_overlap_tile_matches_unpadded_centre():
    """In eval mode the valid net mirror-pads: its output has the input's size, and where the
    receptive field lies inside the image it equals the unpadded network's output."""
    torch.manual_seed(0)
    net = UNet(1, 2, depth=2, base_channels=4, padding="valid").eval()
    x = torch.randn(1, 1, 60, 60)
    full = net(x)
    assert full.shape == (1, 2, 60, 60)
    inner = net._forward_checked(x)  # 20x20, centred (border 20)
    assert torch.allclose(full[..., 20:40, 20:40], inner, atol=1e-5)
    odd = net(torch.randn(1, 1, 37, 50))
    assert odd.shape == (1, 2, 37, 50)


def test_valid_padding_3d_eval_keeps_size():
    net = UNet(1, 3, spatial_dims=3, depth=1, base_channels=2, padding="valid").eval()
    assert net(torch.randn(1, 1, 12, 20, 9)).shape == (1, 3, 12, 20, 9)


def test_mirror_pad_wider_than_image_and_center_crop():
    x = torch.arange(3.0).view(1, 1, 3)
    padded = mirror_pad(x.unsqueeze(-1).expand(1, 1, 3, 2), [(5, 4), (0, 0)])
    assert padded.shape == (1, 1, 12, 2)
    # [0, 1, 2] reflected again and again (period 4), the image at indices 5..7
    assert padded[0, 0, :, 0].tolist() == [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2]
    y = torch.arange(36.0).view(1, 6, 6)
    assert center_crop(y, (2, 2)).flatten().tolist() == [14, 15, 20, 21]
    with pytest.raises(ValueError, match="larger"):
        center_crop(y, (8, 2))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="padding"):
        UNet(1, 1, padding="full")
    with pytest.raises(ValueError, match="dropout needs 3 values"):
        UNet(1, 1, depth=2, dropout=[0.1, 0.2])
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 4"):
        UNet(1, 1, depth=2)(torch.randn(1, 1, 30, 30))


def test_brain_seed_3d_unet_config():
    """conf/model/unet3d.yaml: 16-32-64-128-256 filters, dropout 0.1/0.1/0.2/0.2/0.3, transposed
    convolutions, softmax classes (logits out)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from medseg.cli._hydra import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["model=unet3d"])
    net = instantiate(cfg.model, in_channels=4, out_channels=4)
    assert net.widths == [16, 32, 64, 128, 256]
    drops = [next((m.p for m in b.modules() if isinstance(m, nn.Dropout3d)), 0.0) for b in net.down]
    assert drops == [0.1, 0.1, 0.2, 0.2, 0.3]
    assert all(isinstance(u, nn.ConvTranspose3d) for u in net.up)
    y = net(torch.randn(1, 4, 16, 16, 16))
    assert y.shape == (1, 4, 16, 16, 16)
    y.mean().backward()
    assert first_conv(net).weight.grad.abs().sum() > 0
