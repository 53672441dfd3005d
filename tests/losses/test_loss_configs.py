"""Every conf/loss/*.yaml instantiates and gives a finite loss and gradient for the tasks it serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from medseg.cli._hydra import config_dir
from medseg.tasks import Task

LOSSES = sorted(p.stem for p in Path(config_dir(), "loss").glob("*.yaml"))
# losses that need one class per pixel, or float multi-hot targets
NOT_MULTILABEL = {"ce", "nll", "stochastic_nll"}
NOT_MULTICLASS = {"bce", "bce_dice", "bce_dice_iou", "bce_dice_cldice"}


SERVED = [(n, k) for n in LOSSES for k in ("binary", "multiclass", "multilabel")
          if not ((k == "multilabel" and n in NOT_MULTILABEL) or (k == "multiclass" and n in NOT_MULTICLASS))]


@pytest.mark.parametrize("name, kind", SERVED)
def test_loss_config_forward_backward(name, kind):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"loss={name}"])
    loss = instantiate(cfg.loss)
    task = Task(kind, ["a"] if kind == "binary" else ["a", "b"])
    torch.manual_seed(0)
    logits = torch.randn(2, task.out_channels, 8, 8, requires_grad=True)
    mask = torch.randint(0, 2, (2, 2, 8, 8)) if kind == "multilabel" else torch.randint(0, task.out_channels, (2, 8, 8))
    value = loss(logits, task.loss_target(mask))
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and value > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
