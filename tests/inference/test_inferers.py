"""The inferers of ``conf/inference/*.yaml`` give the logits the mode-string ``Predictor`` gave."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from monai.inferers import SimpleInferer, SlidingWindowInferer, sliding_window_inference
from omegaconf import OmegaConf

from medseg.errors import ConfigError
from medseg.inference import (
    DEFAULT_SIZE_DIVISOR,
    PadToMultipleInferer,
    ResizeInferer,
    make_inferer,
    net_size_divisor,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "inference"


def _old_predictor(mode: str, net, image: torch.Tensor, roi_size=None, overlap=0.25, sw_batch_size=16,
                   blend="gaussian", size_divisor=16, resize_to=None) -> torch.Tensor:
    """``medseg.inference.predictor.Predictor.__call__`` as it was before the inferers (commit 38b9924),
    frozen here as the reference."""
    with torch.no_grad():
        if mode == "sliding_window":
            return sliding_window_inference(image, roi_size, sw_batch_size, net, overlap=overlap, mode=blend,
                                            padding_mode="constant", sw_device=image.device, device=image.device)
        spatial = image.shape[2:]
        interp = "bilinear" if image.ndim == 4 else "trilinear"
        if mode == "resize":
            small = F.interpolate(image, size=resize_to, mode=interp, align_corners=False)
            return F.interpolate(net(small), size=spatial, mode=interp, align_corners=False)
        pads = []
        for s in reversed(spatial):
            extra = (-s) % size_divisor
            pads += [extra // 2, extra - extra // 2]
        out = net(F.pad(image, pads))
        slices = [slice(None), slice(None)]
        for i, s in enumerate(spatial):
            lo = pads[2 * (len(spatial) - 1 - i)]
            slices.append(slice(lo, lo + s))
        return out[tuple(slices)]


class _Net(torch.nn.Module):
    """conv(bias) -> relu -> conv: padding the input (>= 1 pixel) changes the border logits against no
    padding, and a wrong split moves them, so a wrong pad amount or split shows in the output."""

    def __init__(self, nd: int, size_divisor: int | None = 16) -> None:
        super().__init__()
        conv = torch.nn.Conv2d if nd == 2 else torch.nn.Conv3d
        self.a, self.b = conv(2, 4, 3, padding=1), conv(4, 3, 5, padding=2)  # reach 3: pad 1 != pad 2
        torch.nn.init.constant_(self.a.bias, 0.7)
        if size_divisor is not None:
            self.size_divisor = size_divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def _group(name: str, patch, resize):
    """``conf/inference/<name>.yaml`` inside a run config, so ``${data.*}`` resolves."""
    run = OmegaConf.create({"data": {"patch_size": list(patch), "resize": list(resize)},
                            "inference": OmegaConf.load(CONF / f"{name}.yaml")})
    return run.inference


SPATIAL = {2: (45, 61), 3: (19, 23, 17)}
PATCH = {2: (32, 32), 3: (16, 16, 16)}
RESIZE = {2: (32, 40), 3: (16, 20, 12)}


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mode", ["sliding_window", "whole", "resize"])
@pytest.mark.parametrize("source", ["conf", "legacy"])
def test_inferer_equals_old_predictor(mode, nd, source):
    torch.manual_seed(nd)
    net = _Net(nd).eval()
    image = torch.randn(1, 2, *SPATIAL[nd])
    if source == "conf":
        cfg = _group(mode, PATCH[nd], RESIZE[nd])
        if mode == "sliding_window":
            cfg.sw_batch_size = 3
    else:  # a run trained before the inferers: its saved .hydra/config.yaml
        cfg = OmegaConf.create({"_target_": "medseg.inference.predictor.Predictor", "mode": mode,
                                "roi_size": list(PATCH[nd]), "overlap": 0.25, "sw_batch_size": 3,
                                "blend": "gaussian", "resize_to": list(RESIZE[nd]), "output_device": None})
    inferer = make_inferer(cfg, net)
    expected_type = {"sliding_window": SlidingWindowInferer, "whole": PadToMultipleInferer, "resize": ResizeInferer}
    assert isinstance(inferer, expected_type[mode])
    with torch.no_grad():
        new = inferer(image, net)
    old = _old_predictor(mode, net, image, roi_size=PATCH[nd], sw_batch_size=3, size_divisor=16,
                         resize_to=RESIZE[nd])
    assert new.shape == (1, 3, *SPATIAL[nd])
    torch.testing.assert_close(new, old, atol=1e-5, rtol=0)


def test_whole_pads_by_the_networks_divisor():
    """size_divisor: null takes the network's; a different multiple gives different border logits."""
    torch.manual_seed(0)
    image = torch.randn(1, 2, 40, 61)  # 40 rows: no padding by 8, 12 + 12 by 32
    net8, net32 = _Net(2, size_divisor=8).eval(), _Net(2, size_divisor=32).eval()
    net32.load_state_dict(net8.state_dict())
    a = make_inferer(_group("whole", PATCH[2], RESIZE[2]), net8)
    b = make_inferer(_group("whole", PATCH[2], RESIZE[2]), net32)
    assert (a.size_divisor, b.size_divisor) == (8, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(image, net8), _old_predictor("whole", net8, image, size_divisor=8), atol=1e-5,
                                   rtol=0)
        assert (a(image, net8) - b(image, net32)).abs().max() > 1e-3
    assert net_size_divisor(_Net(2, size_divisor=None)) == DEFAULT_SIZE_DIVISOR == 32
    explicit = OmegaConf.create({"_target_": "medseg.inference.inferers.PadToMultipleInferer", "size_divisor": 4})
    assert make_inferer(explicit, net32).size_divisor == 4


def test_simple_inferer_runs_at_the_input_size():
    net = _Net(2).eval()
    image = torch.randn(1, 2, 20, 24)
    inferer = make_inferer(OmegaConf.load(CONF / "simple.yaml"), net)
    assert isinstance(inferer, SimpleInferer)
    with torch.no_grad():
        torch.testing.assert_close(inferer(image, net), net(image))


def test_sliding_window_is_monais_gaussian_window():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(2, 3, 3, padding=1)
    image = torch.randn(1, 2, 50, 37)
    cfg = _group("sliding_window", (16, 16), (16, 16))
    cfg.overlap, cfg.sw_batch_size, cfg.device = 0.5, 4, "cpu"
    with torch.no_grad():
        ours = make_inferer(cfg, net)(image, net)
        ref = sliding_window_inference(image, (16, 16), 4, net, overlap=0.5, mode="gaussian", sigma_scale=0.125,
                                       padding_mode="constant")
    assert ours.shape == (1, 3, 50, 37)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg, match", [
    ({"_target_": "medseg.inference.inferers.ResizeInferer", "resize_to": []}, "resize_to"),
    ({"_target_": "torch.nn.Identity"}, "not a MONAI Inferer"),
    ({"_target_": "monai.inferers.SlidingWindowInferer", "roi_size": None}, "inference.roi_size"),
    ({"_target_": "medseg.inference.predictor.Predictor", "mode": "tiles"}, "inference.mode='tiles'"),
])
def test_bad_inference_config_is_a_config_error(cfg, match):
    with pytest.raises(ConfigError, match=match):
        make_inferer(OmegaConf.create(cfg), _Net(2))
