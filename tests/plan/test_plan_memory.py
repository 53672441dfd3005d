"""The planner's patch/batch fits the memory budget it was given (measured again, in this process), a
CUDA plan made without a GPU is sized from the CPU-fitted step model, and a budget that not even the
smallest patch fits is refused with a message naming it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from PIL import Image

from medseg.cli._hydra import config_dir
from medseg.errors import ConfigError
from medseg.pipelines.plan import _module, experiment_yaml, make_plan
from medseg.plan import rules

SIZE = 96
#: 16 x 96^2 needs ~300 MiB on this 2D U-Net (StepModel: ~1.5-2 KiB per sample-pixel); 0.15 GiB does not hold it
BUDGET_GB = 0.15


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan_mem") / "blobs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(5):
        cy, cx = rng.integers(20, SIZE - 20, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= 12 ** 2
        img = np.clip(60 + 120 * disk + rng.normal(0, 25, disk.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"c{i}.png")
        Image.fromarray((disk * 255).astype(np.uint8)).save(root / "masks" / f"c{i}.png")
    return root


def _cfg(root, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("plan", overrides=["data=folder", f"data.root={root}", "budget_min=600", *overrides],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # the config's ${hydra:...} paths resolve as under medseg-plan
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def test_planned_step_measured_again_fits_the_budget(blobs):
    cfg = _cfg(blobs, f"memory_gb={BUDGET_GB}")
    fp, plan = make_plan(cfg, config_dir())
    patch, batch = plan.get("data.patch_size"), plan.get("data.batch_size")
    m = plan.measurements
    # the budget bound: the unconstrained choice (the whole 96 px image at batch 16) was rejected or skipped
    assert [patch, batch] != [[SIZE, SIZE], rules.BATCH_CAP_2D]
    assert m["tried"][:-1] or m["skipped"]
    assert m["chosen"]["total_bytes"] <= rules.MEMORY_MARGIN * BUDGET_GB * 2**30
    # no loader workers on CPU: assembling a batch is on every step's critical path, and the epochs count it
    timed = m["timed"]
    assert timed["num_workers"] == 0 and timed["load_s"] > 0
    why = next(c.reason for c in plan.choices if c.key == "trainer.max_epochs")
    assert f"{(timed['step_s'] + timed['load_s']) * 1000:.0f} ms (step {timed['step_s'] * 1000:.0f} ms" in why
    assert f"+ {timed['load_s'] * 1000:.0f} ms to load its batch" in why
    module = _module(_cfg(blobs), _dm(cfg), "unet", "bce_dice", rules.depth_for(patch), config_dir())
    again = rules.measure_step(module, batch, patch, 1, "cpu", repeats=1)
    assert again["total_bytes"] <= BUDGET_GB * 2**30


def _dm(cfg):
    from medseg.pipelines.build import build_datamodule

    return build_datamodule(cfg)


def test_cuda_plan_without_a_gpu_is_modelled_and_fits(blobs):
    cfg = _cfg(blobs, "device=cuda", f"memory_gb={BUDGET_GB}")
    fp, plan = make_plan(cfg, config_dir())
    chosen = plan.measurements["chosen"]
    assert plan.measurements["measured_on"] == "cpu" and chosen["measured_on"] == "model"
    assert chosen["total_bytes"] <= rules.MEMORY_MARGIN * BUDGET_GB * 2**30
    assert plan.get("trainer.max_time") == "00:10:00:00"  # no GPU step time: the budget stops the run
    # a 10-hour run: the weight EMA, and the run keeps its final average
    assert plan.get("callbacks") == "ema" and plan.get("callbacks.model_checkpoint.monitor") is None
    assert "nominal planned steps" in next(c.reason for c in plan.choices if c.key == "callbacks")  # not timed: max_time may cut them
    written = yaml.safe_load(experiment_yaml(cfg, fp, plan, "folder"))
    assert written["callbacks"]["model_checkpoint"] == {"monitor": None, "filename": "final-epoch{epoch:03d}"}
    # the model against a CPU measurement of the planned step: within 40%
    patch, batch = plan.get("data.patch_size"), plan.get("data.batch_size")
    module = _module(_cfg(blobs), _dm(cfg), "unet", "bce_dice", rules.depth_for(patch), config_dir())
    measured = rules.measure_step(module, batch, patch, 1, "cpu", repeats=1)["total_bytes"]
    assert chosen["total_bytes"] == pytest.approx(measured, rel=0.4)


def test_refuses_when_even_the_smallest_patch_does_not_fit(blobs):
    with pytest.raises(ConfigError, match=r"memory_gb=0.001: even the smallest patch \[32, 32\] at batch 1 needs"):
        make_plan(_cfg(blobs, "memory_gb=0.001"), config_dir())


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_step_is_measured_under_the_runs_speed_policy(blobs, monkeypatch, precision):
    """The planner times the step as the run will train it: under the precision's autocast, channels-last
    where the module uses it (timed in float32 while the run trained in bf16, plans used 55 % of their
    budget on the real DRIVE CV)."""
    monkeypatch.setenv("MEDSEG_PRECISION", precision)
    module = _module(_cfg(blobs), _dm(_cfg(blobs)), "unet", "bce_dice", 2, config_dir())
    assert module.eval_precision == precision and module.channels_last == (precision != "32-true")
    seen = []
    conv = next(m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    conv.register_forward_hook(lambda m, args, out: seen.append(
        (out.dtype, args[0].is_contiguous(memory_format=torch.channels_last), m.weight.is_contiguous())))
    rules.measure_step(module, 2, [32, 32], 1, "cpu", repeats=1)
    mixed = precision == "bf16-mixed"
    assert seen and all(s == ((torch.bfloat16 if mixed else torch.float32), mixed, not mixed) for s in seen)
