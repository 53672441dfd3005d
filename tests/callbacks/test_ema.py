"""callbacks=ema (Lightning's EMAWeightAveraging): checkpoints hold the averaged weights, validation and
the test evaluation use them, and a resumed run equals the uninterrupted one exactly on CPU (after an
epoch boundary and after a SIGTERM in the middle of an epoch)."""

from __future__ import annotations

import json
import os
import signal

import lightning as L
import pytest
import torch

from medseg.errors import Interrupted
from medseg.pipelines.train import train
from medseg.utils.checkpoint import load_checkpoint

TOL = 1e-6


class SigtermAtStep(L.Callback):
    """Sends this process SIGTERM after optimiser step ``step`` (the graceful-stop path of medseg-train)."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class Crash(RuntimeError):
    pass


class CrashAtStep(L.Callback):
    """Raises after optimiser step ``step``, once every other callback has run (``last.ckpt`` of that
    step written): nothing else is saved, as after a ``kill -9``."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"crash after step {self.step}")


def base(tiny_drive) -> list[str]:
    return ["debug=smoke", f"data.root={tiny_drive}", "callbacks=ema", "callbacks.ema.decay=0.8",
            "model.base_channels=8", "optimizer.lr=0.01", "seed=5"]


def numbers(run_dir) -> dict[str, float]:
    d = json.loads((run_dir / "results.json").read_text())
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and v == v}


def ckpt(run_dir, name="last.ckpt") -> dict:
    return load_checkpoint(run_dir / "checkpoints" / name)


def best(run_dir) -> dict:
    """The best checkpoint (what the test evaluation loads); ``last.ckpt`` is compared too, in
    test_resume_equals_the_uninterrupted_run."""
    found = sorted(p.name for p in (run_dir / "checkpoints").glob("best-*.ckpt"))
    assert len(found) == 1, found
    return ckpt(run_dir, found[0]) | {"name": found[0]}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.get("name") == b.get("name")
    for key in ("state_dict", "current_model_state", "averaging_state"):
        assert a[key].keys() == b[key].keys(), key
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=TOL, msg=f"{key}.{name}")
    assert a["global_step"] == b["global_step"]


def assert_same_numbers(ref: dict[str, float], got: dict[str, float]) -> None:
    assert set(ref) == set(got)
    bad = {k: (ref[k], got[k]) for k in ref if abs(ref[k] - got[k]) > TOL}
    assert not bad, bad


@pytest.fixture(scope="module")
def reference(tiny_drive, tmp_path_factory):
    """An uninterrupted 3-epoch run (4 optimiser steps per epoch)."""
    from tests.conftest import compose_cfg

    run_dir = tmp_path_factory.mktemp("ema_ref") / "run"
    cfg = compose_cfg("train", base(tiny_drive) + ["trainer.max_epochs=3"], run_dir)
    train(cfg, run_dir)
    return run_dir


def test_checkpoint_holds_the_average_and_the_raw_weights(reference):
    state = ckpt(reference)
    assert state["global_step"] == 12
    assert int(state["averaging_state"]["n_averaged"]) == 12  # one update per optimiser step
    avg, raw = state["state_dict"], state["current_model_state"]
    assert avg.keys() == raw.keys()
    diff = max((avg[k].float() - raw[k].float()).abs().max().item() for k in avg if avg[k].is_floating_point())
    assert diff > 1e-4, "the averaged weights equal the raw ones: no averaging happened"
    # the test evaluation used the best checkpoint's state_dict, i.e. averaged weights
    assert "current_model_state" in best(reference)
    assert numbers(reference)["test/dice"] > 0.1, "the run learned nothing: the comparisons would be vacuous"


@pytest.mark.parametrize("moment", ["sigterm-epoch-boundary", "crash-mid-epoch"])
def test_resume_equals_the_uninterrupted_run(reference, tiny_drive, train_cfg, tmp_path, moment):
    """Stopped after step 6 (inside epoch 1, steps 5..8), then ``resume=true``. SIGTERM: the graceful
    stop, resumed from the end-of-epoch-0 checkpoint. Crash (checkpoint every step): an exception right
    after the step-6 checkpoint, nothing else saved (as ``kill -9``), resumed from that step."""
    run_dir = tmp_path / "stopped"
    every = [] if moment.startswith("sigterm") else ["callbacks.checkpoint.every_n_train_steps=1"]
    how = "CrashAtStep" if moment.startswith("crash") else "SigtermAtStep"
    stop = [f"+callbacks.stop._target_=tests.callbacks.test_ema.{how}", "+callbacks.stop.step=6"]
    cfg, _ = train_cfg(base(tiny_drive) + ["trainer.max_epochs=3"] + every + stop, run_dir)
    with pytest.raises(Crash if how == "CrashAtStep" else Interrupted):
        train(cfg, run_dir)
    state = ckpt(run_dir)
    assert state["global_step"] == (4 if moment.startswith("sigterm") else 6)
    # the average's step count travels with the checkpoint, and includes the checkpoint's own step
    # (callbacks=ema updates the average before callbacks.checkpoint writes last.ckpt)
    assert int(state["averaging_state"]["n_averaged"]) == state["global_step"]
    cfg, _ = train_cfg(base(tiny_drive) + ["trainer.max_epochs=3", "resume=true"] + every, run_dir)
    train(cfg, run_dir)
    assert_same_state(best(reference), best(run_dir))
    assert_same_state(ckpt(reference), ckpt(run_dir))  # the final last.ckpt, written in place
    assert_same_numbers(numbers(reference), numbers(run_dir))
