"""smp, timm HRNet, torchvision FCN and MONAI networks behind the in/out-channels convention.
Tiny encoders at 64x64 (2D) / 32^3 (3D); nothing is downloaded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medseg.models.smp_factory import ARCHS, build_smp


def grad_reaches_first_layer(net: nn.Module) -> bool:
    conv = next(m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    return conv.weight.grad is not None and bool(conv.weight.grad.abs().sum() > 0)


def check(net: nn.Module, x: torch.Tensor, out_channels: int) -> None:
    net.train()
    y = net(x)
    y = y[0] if isinstance(y, tuple) else y
    assert y.shape == (x.shape[0], out_channels, *x.shape[2:])
    y.float().pow(2).mean().backward()
    assert grad_reaches_first_layer(net)


@pytest.mark.parametrize("arch", ARCHS)
def test_smp_arch_with_timm_encoder(arch):
    size = 128 if arch == "PAN" else 64  # PAN's pyramid attention pools the stride-32 map further
    net = build_smp(arch, "tu-resnet10t", in_channels=1, out_channels=3)
    check(net, torch.randn(2, 1, size, size), 3)


def test_smp_smp_encoder_and_unknown_arch():
    check(build_smp("Unet", "resnet18", 3, 1, encoder_depth=3, decoder_channels=[32, 16, 8]),
          torch.randn(2, 3, 32, 32), 1)
    with pytest.raises(ValueError, match="unknown smp architecture"):
        build_smp("UNetXL", "resnet18", 3, 1)


def test_smp_encoder_weights_path_loads_local_state(tmp_path):
    src = build_smp("FPN", "resnet18", 1, 2)
    path = tmp_path / "enc.pt"
    torch.save(src.encoder.state_dict(), path)
    dst = build_smp("Unet", "resnet18", 1, 2, encoder_weights_path=str(path))
    for k, v in src.encoder.state_dict().items():
        assert torch.equal(v, dst.encoder.state_dict()[k]), k
    fresh = build_smp("Unet", "resnet18", 1, 2)
    assert not torch.equal(fresh.encoder.state_dict()["conv1.weight"], src.encoder.state_dict()["conv1.weight"])
    # a whole-model state dict (encoder.* keys) works too; a wrong encoder is refused
    torch.save(src.state_dict(), tmp_path / "full.pt")
    build_smp("Unet", "resnet18", 1, 2, encoder_weights_path=str(tmp_path / "full.pt"))
    from medseg.errors import CheckpointError

    with pytest.raises(CheckpointError, match="do not match the encoder"):
        build_smp("Unet", "resnet34", 1, 2, encoder_weights_path=str(path))
    with pytest.raises(CheckpointError, match="does not exist"):
        build_smp("Unet", "resnet18", 1, 2, encoder_weights_path=str(tmp_path / "nope.pt"))


@pytest.mark.slow
def test_smp_unet_on_hrnet_w18_encoder():
    check(build_smp("Unet", "tu-hrnet_w18", 1, 2), torch.randn(2, 1, 64, 64), 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["HRNetV2", "DeepLabV3PlusHRNet"])
def test_hrnet_networks_w18(name):
    from medseg.models import hrnet

    kwargs = {"aspp_channels": 32} if name == "DeepLabV3PlusHRNet" else {}
    check(getattr(hrnet, name)(1, 2, width=18, **kwargs), torch.randn(2, 1, 64, 64), 2)


def test_hrnet_rejects_unknown_width():
    from medseg.models.hrnet import HRNetV2

    with pytest.raises(ValueError, match="18, 32 or 48"):
        HRNetV2(1, 1, width=40)


@pytest.mark.parametrize("aux", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_fcn_resnet_any_input_channels(aux):
    from medseg.models.fcn import FCN

    net = FCN(1, 3, backbone="resnet50", aux_loss=aux)
    net.train()
    out = net(torch.randn(2, 1, 32, 32))
    assert isinstance(out, tuple) == aux
    check(net, torch.randn(2, 1, 32, 32), 3)
    assert net.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_fcn_resnet101_builds_the_seed_backbone():
    from medseg.models.fcn import FCN

    net = FCN(3, 2)
    assert len(net.model.backbone.layer3) == 23  # ResNet-101


@pytest.mark.parametrize("dims", [2, 3])
def test_segresnet(dims):
    from medseg.models.monai_nets import segresnet

    shape = (2, 1, 32, 32) if dims == 2 else (1, 1, 16, 16, 16)
    check(segresnet(1, 3, spatial_dims=dims, init_filters=8), torch.randn(shape), 3)


def test_unetr_3d_small():
    from medseg.models.monai_nets import unetr

    net = unetr(1, 2, img_size=(32, 32, 32), feature_size=8, hidden_size=48, mlp_dim=96, num_heads=2)
    check(net, torch.randn(1, 1, 32, 32, 32), 2)
    with pytest.raises(ValueError, match="does not match spatial_dims"):
        unetr(1, 2, img_size=(32, 32))


def test_swinunetr_small():
    """Sides must be >= 64 (instance norm on the stride-32 map); 3D checked without gradients."""
    from medseg.models.monai_nets import swinunetr

    small = {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}
    check(swinunetr(1, 2, spatial_dims=2, **small), torch.randn(2, 1, 64, 64), 2)
    with torch.no_grad():
        assert swinunetr(1, 2, **small).eval()(torch.randn(1, 1, 64, 64, 64)).shape == (1, 2, 64, 64, 64)
