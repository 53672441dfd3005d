"""Learning-rate schedules from conf/scheduler, stepped by hand."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from medseg.cli._hydra import config_dir
from medseg.optim.schedulers import cosine_with_warmup


def lrs(scheduler, optimizer, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def sgd(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_cosine_with_warmup_trajectory():
    opt = sgd()
    got = lrs(cosine_with_warmup(opt, max_epochs=6, warmup_epochs=2, warmup_start_factor=0.1), opt, 6)
    assert got[0] == pytest.approx(0.1)
    assert got[1] == pytest.approx(0.55)  # linear from 0.1 to 1 over 2 steps
    cos = [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert got[2:] == pytest.approx(cos)


def test_cosine_with_warmup_shortens_warmup_for_short_runs(caplog):
    opt = sgd()
    sched = cosine_with_warmup(opt, max_epochs=1, warmup_epochs=3)
    assert "shortened" in caplog.text
    assert lrs(sched, opt, 1) == [pytest.approx(1.0)]
    with pytest.raises(ValueError, match="warmup_epochs >= 0"):
        cosine_with_warmup(sgd(), max_epochs=5, warmup_epochs=-1)


@pytest.mark.parametrize("name", ["cosine", "cosine_warmup", "poly", "step", "plateau"])
def test_scheduler_configs_instantiate(name):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"scheduler={name}", "trainer.max_epochs=10"])
    opt = sgd(0.01)
    sched = instantiate(cfg.scheduler)(optimizer=opt)
    if name == "plateau":
        assert sched.mode == "max"
        return
    got = lrs(sched, opt, 11)
    if name == "cosine":
        assert got[0] == pytest.approx(0.01) and all(a > b for a, b in itertools.pairwise(got[:10]))
    elif name == "cosine_warmup":  # 1 warm-up epoch from 1 % of lr, then decay
        assert got[0] == pytest.approx(1e-4) and got[1] == pytest.approx(0.01) and got[9] < got[2] < got[1]
    elif name == "poly":  # nnU-Net: lr0 * (1 - e / E) ** 0.9
        assert got[:10] == pytest.approx([0.01 * (1 - e / 10) ** 0.9 for e in range(10)])
    else:  # step: x0.1 every 10 epochs
        assert got[:10] == pytest.approx([0.01] * 10) and got[10] == pytest.approx(0.001)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adamp", "rmsprop"])
def test_optimizer_configs_step(name):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"optimizer={name}"])
    p = torch.nn.Parameter(torch.ones(3))
    opt = instantiate(cfg.optimizer)(params=[p])
    (p**2).sum().backward()
    opt.step()
    assert (p < 1).all(), f"{name} did not move the parameter down the gradient"
