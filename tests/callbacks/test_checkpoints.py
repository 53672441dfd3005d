"""conf/callbacks/default.yaml's checkpoints: the best one by the monitor, and ``last.ckpt`` after every
epoch (Lightning >= 2.6 writes its own ``save_last`` copy only in epochs that improve the monitor)."""

from __future__ import annotations

import json

import pytest
import torch

from medseg.pipelines.train import train
from medseg.utils.checkpoint import load_checkpoint as load
from tests.callbacks.test_ema import Crash

STEPS = 4  # optimiser steps per epoch of this config
# the monitor is the epoch number, minimised: epoch 0 is the best and every later epoch is not
BEST_IS_EPOCH_0 = ["callbacks.model_checkpoint.monitor=epoch", "callbacks.model_checkpoint.mode=min"]


def base(tiny_drive) -> list[str]:
    return ["debug=smoke", f"data.root={tiny_drive}", "model.base_channels=8", "trainer.max_epochs=3", "seed=3",
            *BEST_IS_EPOCH_0]


def files(run_dir) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))


@pytest.fixture(scope="module")
def finished(tiny_drive, tmp_path_factory):
    from tests.conftest import compose_cfg

    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    train(compose_cfg("train", base(tiny_drive), run_dir), run_dir)
    return run_dir


def test_last_checkpoint_is_the_last_epoch_not_the_best(finished):
    assert files(finished) == ["best-epoch000.ckpt", "last.ckpt"]
    best, last = load(finished / "checkpoints" / "best-epoch000.ckpt"), load(finished / "checkpoints" / "last.ckpt")
    assert (best["epoch"], best["global_step"]) == (0, STEPS)
    assert (last["epoch"], last["global_step"]) == (2, 3 * STEPS)
    moved = [k for k in last["state_dict"] if not torch.equal(last["state_dict"][k], best["state_dict"][k])]
    assert moved, "last.ckpt holds the best epoch's weights"
    # it carries the best checkpoint's record, so a resumed run keeps selecting against it
    states = [v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint") and v.get("monitor") == "epoch"]
    assert len(states) == 1 and states[0]["best_model_path"].endswith("best-epoch000.ckpt")


def test_a_resumed_run_keeps_writing_last_ckpt_in_place(finished, tiny_drive, train_cfg, tmp_path):
    """A crash right after the step-6 checkpoint (mid-epoch 1, nothing else saved, as ``kill -9``), then
    ``resume=true``: the run ends with one ``last.ckpt``, the final one, equal to the uninterrupted run's
    (Lightning's version counter used to leave the final one as ``last-v1.ckpt`` beside a stale one)."""
    run_dir = tmp_path / "crashed"
    every = ["callbacks.checkpoint.every_n_train_steps=1"]
    crash = ["+callbacks.stop._target_=tests.callbacks.test_ema.CrashAtStep", "+callbacks.stop.step=6"]
    cfg, _ = train_cfg(base(tiny_drive) + every + crash, run_dir)
    with pytest.raises(Crash):
        train(cfg, run_dir)
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 6
    cfg, _ = train_cfg(base(tiny_drive) + every + ["resume=true"], run_dir)
    train(cfg, run_dir)
    assert files(run_dir) == ["best-epoch000.ckpt", "last.ckpt"]
    got, ref = load(run_dir / "checkpoints" / "last.ckpt"), load(finished / "checkpoints" / "last.ckpt")
    assert got["global_step"] == ref["global_step"] == 3 * STEPS
    for k in ref["state_dict"]:
        torch.testing.assert_close(got["state_dict"][k], ref["state_dict"][k], rtol=0, atol=1e-6, msg=k)


def test_a_run_without_validation_images_keeps_its_final_weights(tiny_drive, train_cfg):
    """``data.val_fraction=0``: every training image trains, no validation runs, and the run keeps
    its final weights (``callbacks.model_checkpoint.monitor=null``)."""
    from medseg.errors import ConfigError

    cfg, run_dir = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "model.base_channels=8", "trainer.max_epochs=2",
                              "data.val_fraction=0", "callbacks.model_checkpoint.monitor=null"])
    results = train(cfg, run_dir)
    assert json.loads((run_dir / "splits.json").read_text())["val"] == []
    assert files(run_dir) == ["best-epoch001.ckpt", "last.ckpt"]
    kept, last = load(run_dir / "checkpoints" / "best-epoch001.ckpt"), load(run_dir / "checkpoints" / "last.ckpt")
    assert kept["global_step"] == last["global_step"] > 0
    assert results["val/best_dice"] != results["val/best_dice"]  # NaN: nothing was validated
    assert results["test/dice"] == results["test/dice"]  # the test evaluation ran
    # a threshold chosen on validation images it does not have is refused, naming the option
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.eval import evaluate_split, load_model

    dm = build_datamodule(cfg)
    module, _ = load_model(cfg, dm, run_dir, "best")
    with pytest.raises(ConfigError, match=r"threshold=auto .* data.val_fraction=0"):
        evaluate_split(module, dm, run_dir / "auto", overlays=False, threshold="auto")
    # selecting by a validation metric without validation images is refused before training
    cfg, run_dir = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "data.val_fraction=0"], run_dir.parent / "r2")
    with pytest.raises(ConfigError, match=r"data.val_fraction=0.*callbacks.model_checkpoint.monitor"):
        train(cfg, run_dir)
    assert not (run_dir / "checkpoints").exists()
