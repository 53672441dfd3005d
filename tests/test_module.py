"""SegmentationModule: valid-padding target cropping, deep supervision, channels-last and compile
options (unit level; the pipeline runs are in tests/models and tests/losses)."""

from __future__ import annotations

import pytest
import torch

from medseg.inference.inferers import PadToMultipleInferer
from medseg.losses.pixel import BCEWithLogits, CrossEntropy
from medseg.models.blocks import center_crop
from medseg.models.chained_unet import ChainedUNet
from medseg.models.unet import UNet
from medseg.module import SegmentationModule
from medseg.tasks import Task


def make(net, loss=None, task=None, **kwargs) -> SegmentationModule:
    return SegmentationModule(net=net, loss=loss or BCEWithLogits(), optimizer=torch.optim.Adam,
                              task=task or Task("binary", ["vessel"]), predictor=PadToMultipleInferer(16), **kwargs)


def test_valid_padding_loss_uses_centre_cropped_target():
    torch.manual_seed(0)
    module = make(UNet(1, 1, depth=1, base_channels=4, padding="valid"))
    image = torch.randn(2, 1, 32, 32)
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[:, 8:24, 8:24] = 1  # exactly the 16x16 centre the valid net sees
    logits = module.net.train()(image)
    assert logits.shape == (2, 1, 16, 16)
    loss = module.compute_loss(logits, mask)
    assert loss.item() == pytest.approx(BCEWithLogits()(logits, torch.ones_like(logits)).item(), rel=1e-6)


def test_valid_padding_eval_step_scores_full_image():
    """Validation goes through the predictor: the net mirror-pads, logits cover the whole image."""
    module = make(UNet(1, 1, depth=1, base_channels=4, padding="valid"))
    module.net.eval()
    logits = module.predict_logits(torch.randn(1, 1, 30, 26))
    assert logits.shape == (1, 1, 30, 26)


def test_deep_supervision_tuple_output_weighted():
    torch.manual_seed(0)
    net = ChainedUNet(1, 2, depth=1, base_channels=4, supervise_both=True).train()
    module = make(net, loss=CrossEntropy(), task=Task("multiclass", ["vessel"]), deep_supervision_weights=[1.0, 0.25])
    mask = (torch.rand(2, 16, 16) > 0.7).long()
    out = net(torch.randn(2, 1, 16, 16))
    target = mask.unsqueeze(1)
    expected = CrossEntropy()(out[0], target) + 0.25 * CrossEntropy()(out[1], target)
    assert module.compute_loss(out, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_channels_last_converts_net_and_batches():
    module = make(UNet(1, 1, depth=1, base_channels=4), channels_last=True)
    module.setup("fit")
    conv = module.net.down[0].body[4]  # 4 -> 4 channels: the two layouts differ
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    x = module.memory_format(torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    off = make(UNet(1, 1, depth=1, base_channels=4))
    off.setup("fit")
    assert off.net.down[0].body[4].weight.is_contiguous()


def test_compile_keeps_plain_state_dict_names():
    plain = make(UNet(1, 1, depth=1, base_channels=4))
    compiled = make(UNet(1, 1, depth=1, base_channels=4), compile=True)
    assert compiled._compiled, "compile=True must set up a compiled forward"
    assert set(compiled.state_dict()) == set(plain.state_dict())
    assert not any("_orig_mod" in k for k in compiled.state_dict())


def test_center_crop_of_roi_and_index_masks():
    roi = torch.zeros(1, 10, 10, dtype=torch.bool)
    roi[:, 3:7, 3:7] = True
    assert center_crop(roi, (4, 4)).all()
