"""Framework overhead: a training epoch through medseg (Lightning module, DataModule with patch
sampling and flips, logging, checkpoint and metrics callbacks) versus a bare PyTorch loop with the
same model, batch size, optimiser and patches already in memory.

Prints steps/s for both and the ratio; appends a section to results.md when run from run_all.py.

    python experiments/benchmarks/bench_overhead.py [--steps 60] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, header


def _cfg(data_root: Path, out: Path, steps: int, batch: int, device: str):
    sys.path.insert(0, str(REPO))
    from tests.conftest import compose_cfg

    samples = steps * batch
    return compose_cfg("train", [
        f"data.root={data_root}", f"data.samples_per_epoch={samples}", f"data.batch_size={batch}",
        "trainer.max_epochs=1", "+trainer.limit_val_batches=0", "evaluate=false", "~scheduler",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "trainer.deterministic=false",
        "logger=csv",
    ], out)


class StepTimer:
    """Lightning callback: wall time between the first and the last training batch end."""

    def __init__(self):
        import lightning as L

        class _CB(L.Callback):
            def __init__(self, outer):
                self.outer = outer

            def on_train_batch_end(self, trainer, *args):
                if self.outer.t0 is None:
                    self.outer.t0 = time.perf_counter()
                    self.outer.n = 0
                else:
                    self.outer.n += 1
                    self.outer.t1 = time.perf_counter()

        self.t0 = self.t1 = None
        self.n = 0
        self.callback = _CB(self)

    @property
    def steps_per_s(self) -> float:
        return self.n / (self.t1 - self.t0)


def _build(data_root: Path, tmp: str, steps: int, batch: int, device: str):
    """The config, data module and module both loops start from (same seed, model and data)."""
    import lightning as L

    from medseg.pipelines.build import build_datamodule, build_module

    cfg = _cfg(data_root, Path(tmp), steps, batch, device)
    L.seed_everything(0)
    dm = build_datamodule(cfg)
    return cfg, dm, build_module(cfg, dm)


def medseg_steps_per_s(data_root: Path, steps: int, batch: int, device: str) -> float:
    from medseg.pipelines.build import build_trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg, dm, module = _build(data_root, tmp, steps, batch, device)
        trainer = build_trainer(cfg, Path(tmp))
        timer = StepTimer()
        trainer.callbacks.append(timer.callback)
        trainer.fit(module, datamodule=dm)
        return timer.steps_per_s


def bare_steps_per_s(data_root: Path, steps: int, batch: int, device: str) -> float:
    """Same model, loss, optimiser and batch; patches pre-extracted into device memory."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        cfg, dm, module = _build(data_root, tmp, steps, batch, device)
        net, loss_fn, task = module.net.to(device), module.loss, module.task
        loader = dm.train_dataloader()
        batches = [(b["image"].to(device), task.loss_target(b["mask"]).to(device)) for b in loader]
        opt = torch.optim.Adam(net.parameters(), lr=cfg.optimizer.lr)
        net.train()
        t0 = None
        for i, (x, y) in enumerate(batches):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i == 0:
                t0 = time.perf_counter()
        return (len(batches) - 1) / (time.perf_counter() - t0)


def run(steps: int = 60, batch: int = 16, repeats: int = 5, device: str = "cpu") -> str:
    from medseg.data.synth.drive import write_drive

    with tempfile.TemporaryDirectory() as tmp:
        root = write_drive(Path(tmp) / "DRIVE", n_train=8, n_test=1, height=292, width=282, seed=0)
        medseg_rates, bare_rates = [], []
        for i in range(repeats):  # interleaved pairs, alternating which loop goes first, so drift hits both
            order = (bare_rates, medseg_rates) if i % 2 == 0 else (medseg_rates, bare_rates)
            for rates in order:
                fn = bare_steps_per_s if rates is bare_rates else medseg_steps_per_s
                rates.append(fn(root, steps, batch, device))
    m, b = statistics.median(medseg_rates), statistics.median(bare_rates)
    pair = sorted(br / mr - 1 for br, mr in zip(bare_rates, medseg_rates))
    overhead = statistics.median(pair)
    lines = [header(f"1. Framework overhead ({device})"),
             f"U-Net (base 16, depth 4), 64x64 patches, batch {batch}, Adam, {steps} steps per epoch; "
             f"{repeats} interleaved pairs of runs (alternating which loop runs first).", "",
             "| loop | median steps/s | runs |", "|---|---|---|",
             f"| bare PyTorch (patches in memory) | {b:.2f} | {', '.join(f'{r:.2f}' for r in bare_rates)} |",
             f"| medseg-train (Lightning, DataModule, callbacks, CSV logger) | {m:.2f} | "
             f"{', '.join(f'{r:.2f}' for r in medseg_rates)} |", "",
             f"**Overhead: {100 * overhead:+.1f} %** (median over pairs of bare / medseg - 1; pairs range "
             f"{100 * pair[0]:+.1f} % to {100 * pair[-1]:+.1f} %; target <= 3 %).", ""]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    run(a.steps, a.batch, a.repeats, a.device)
