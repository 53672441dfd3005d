"""Training throughput of the shipped recipes, old default vs the speed policy (medseg.utils.runtime).

* **throughput**: images/s of Lightning training steps (``trainer.fit``, validation off) for the
  DRIVE recipe (``experiment=drive_unet``; real DRIVE from ``../shared/data/DRIVE/training`` when
  present, else synthetic), the hand-bone smp U-Net and the BraTS 3D U-Net (small synthetic sizes).
  ``old``: float32, contiguous, eager, ``num_workers 0``, threads = all CPUs; ``new``: every knob
  ``auto``. Repeats are interleaved (old, new, old, new...) in one process and the ratio is of the
  medians.
* **bf16 accuracy** on one batch of the DRIVE recipe: loss and whole-image probabilities under the
  new policy against float32 with the same weights.
* **loading** (DRIVE): ``num_workers`` 0/1/2 and a background prefetch thread, steps under the new
  policy.
* **compile** (``--compile``, DRIVE): eager vs ``torch.compile`` steps under the new policy, the
  compile time and the break-even in epochs of the recipe (``samples_per_epoch / batch_size`` steps).

Figures from a shared machine are noisy; only ratios measured in the same run mean anything.

    python experiments/benchmarks/bench_speed.py [--quick] [--device cpu|cuda] [--compile] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED_DRIVE, header  # noqa: E402

sys.path.insert(0, str(REPO))

OLD = ["trainer.precision=32-true", "module.channels_last=false", "module.compile=false", "data.num_workers=0"]
NEW = ["trainer.precision=auto", "module.channels_last=auto", "module.compile=false", "data.num_workers=auto"]


def recipes(data_dir: Path, quick: bool) -> dict[str, list[str]]:
    drive = ["experiment=drive_unet", "data.synthesize.n_train=8", "data.synthesize.n_test=2"]
    if not quick and (SHARED_DRIVE / "training").is_dir():
        drive = ["experiment=drive_unet", "data=drive", f"data.root={SHARED_DRIVE}", "data.test_split=null"]
    out = {
        "drive (U-Net, 64x64, batch 16)": drive,
        "handbone (smp U-Net resnet34, 128x128, batch 8)": [
            "experiment=handbone_smp", "model.arch=Unet", "data.synthesize.n_train=4", "data.synthesize.n_test=1"],
        "brats (3D U-Net, 48^3, batch 2)": [
            "experiment=brats_unet3d", "data.synthesize.n_cases=4", f"data.cache_dir={data_dir / 'cache'}"],
    }
    return out


def _cfg(overrides: list[str], data_dir: Path, run_dir: Path, steps: int | None, device: str):
    from tests.conftest import compose_cfg

    cfg = compose_cfg("train", [*overrides, f"paths.data_dir={data_dir}", "trainer.max_epochs=1",
                                "+trainer.limit_val_batches=0", "trainer.deterministic=false", "logger=csv",
                                "evaluate=false", f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}"],
                      run_dir)
    if steps is not None:
        cfg.data.samples_per_epoch = (steps + 1) * int(cfg.data.batch_size)
    return cfg


class _StepClock:
    """Wall time from the end of the first training batch (warm-up excluded) to the end of the last."""

    def __new__(cls):
        import lightning as L

        class Clock(L.Callback):
            def __init__(self):
                self.t0 = self.t1 = None
                self.n = 0

            def on_train_batch_end(self, trainer, *args):
                if trainer.strategy.root_device.type == "cuda":
                    import torch

                    torch.cuda.synchronize()
                now = time.perf_counter()
                if self.t0 is None:
                    self.t0 = now
                else:
                    self.n, self.t1 = self.n + 1, now

        return Clock()


def _fit_rate(cfg, dm, module, out: Path) -> float:
    import lightning as L

    from medseg.utils.checkpoint import AtomicCheckpointIO

    clock = _StepClock()
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, max_epochs=1,
                        precision=_precision(cfg), logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[clock], plugins=[AtomicCheckpointIO()], default_root_dir=str(out))
    trainer.fit(module, datamodule=dm)
    return clock.n * int(cfg.data.batch_size) / (clock.t1 - clock.t0)


def _precision(cfg):
    from medseg.pipelines.build import resolve_precision

    return resolve_precision(cfg)


def _arm(overrides, policy, data_dir, work, steps, device):
    import torch

    from medseg.pipelines.build import build_datamodule, build_module
    from medseg.utils import runtime

    cfg = _cfg(overrides + policy, data_dir, work / "run", steps, device)
    dm = build_datamodule(cfg)
    torch.manual_seed(0)
    module = build_module(cfg, dm)
    threads = runtime.resolve_threads("auto", user_omp=runtime.USER_OMP).intra if policy is NEW \
        else runtime.available_cpus()
    return cfg, dm, module, threads


def throughput(data_dir: Path, work: Path, repeats: int, steps: dict[str, int], device: str,
               quick: bool) -> list[str]:
    import torch

    rows = ["| recipe | old images/s | float32, new threads | new images/s | new / old | new / float32 at equal "
            "threads | new policy |", "|---|---|---|---|---|---|---|"]
    for name, overrides in recipes(data_dir, quick).items():
        n = steps[name.split()[0]]
        arms = {label: _arm(overrides, policy, data_dir, work, n, device) for label, policy in
                (("old", OLD), ("new", NEW))}
        # float32 with the new policy's threads: separates the precision/layout gain from the threads'
        if arms["new"][3] != arms["old"][3]:  # else it is the old arm
            arms["fp32"] = (*arms["old"][:3], arms["new"][3])
        rates: dict[str, list[float]] = {k: [] for k in arms}
        for _ in range(repeats):
            for label, (cfg, dm, module, threads) in arms.items():
                torch.set_num_threads(threads)
                rates[label].append(_fit_rate(cfg, dm, module, work))
        old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
        fp32 = statistics.median(rates["fp32"]) if "fp32" in rates else old
        cfg, dm, module, threads = arms["new"]
        policy = (f"{_precision(cfg)}, {'channels-last' if module.channels_last else 'contiguous'}, "
                  f"threads {threads}, workers {dm.num_workers}")
        rows.append(f"| {name} | {old:.2f} | {fp32:.2f} | {new:.2f} | **{new / old:.2f}x** | {new / fp32:.2f}x | "
                    f"{policy} |")
        log(f"{name}: {rates}")
        print(rows[-1], flush=True)
    return rows


_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[bench_speed +{time.perf_counter() - _T0:.0f}s] {msg}", flush=True)


_DRIVE: dict[str, object] = {}


def _drive(data_dir: Path, work: Path, steps: int, device: str):
    """The DRIVE recipe's config and data module under the new policy (built once)."""
    from medseg.pipelines.build import build_datamodule

    if not _DRIVE:
        overrides = recipes(data_dir, quick=True)["drive (U-Net, 64x64, batch 16)"]
        cfg = _cfg(overrides + NEW, data_dir, work / "drive", steps, device)
        _DRIVE.update(cfg=cfg, dm=build_datamodule(cfg), overrides=overrides)
    return _DRIVE["cfg"], _DRIVE["dm"]


def bf16_accuracy(data_dir: Path, work: Path, steps: int, device: str) -> list[str]:
    import torch

    from medseg.pipelines.build import build_module
    from medseg.utils import runtime

    cfg, dm = _drive(data_dir, work, steps, device)
    torch.manual_seed(0)
    module = build_module(cfg, dm).to("cuda" if device == "cuda" else "cpu")
    precision = module.eval_precision
    batch = next(iter(dm.train_dataloader()))
    x, y = batch["image"].to(module.device), batch["mask"].to(module.device)
    module.train()
    loss32 = module.compute_loss(module.net(x), y).item()
    with runtime.autocast(x.device.type, precision):
        loss16 = module.compute_loss(module.net(module._memory_format(x)), y).item()
    case = dm.cases["val"][0]
    image = torch.from_numpy(case.image.copy())[None].to(module.device)
    module.eval()
    with torch.no_grad():
        p16 = torch.sigmoid(module.predict_logits(image))
        module.eval_precision = "32-true"
        p32 = torch.sigmoid(module.predict_logits(image))
    agree = ((p16 > 0.5) == (p32 > 0.5)).float().mean().item()
    return [f"bf16 check ({precision} vs 32-true, same weights, untrained DRIVE U-Net): training loss "
            f"{loss16:.5f} vs {loss32:.5f} (relative difference {abs(loss16 - loss32) / abs(loss32):.2e}); "
            f"whole-image probabilities: max |diff| {(p16 - p32).abs().max().item():.4f}, "
            f"mean |diff| {(p16 - p32).abs().mean().item():.5f}, thresholded pixels agreeing {100 * agree:.3f} %. "
            "The CV Dice with and without bf16 at the same budget is bench_quality.py's to measure."]


def _prefetch(loader, depth: int = 2):
    """Batches of ``loader`` produced by a background thread (``depth`` ahead)."""
    q: queue.Queue = queue.Queue(depth)
    done = object()

    def work():
        for b in loader:
            q.put(b)
        q.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (b := q.get()) is not done:
        yield b


def _steps_rate(module, batches, precision, opt) -> float:
    from medseg.utils import runtime

    n, t0 = 0, None
    for batch in batches:
        x, y = batch["image"].to(module.device), batch["mask"].to(module.device)
        with runtime.autocast(x.device.type, precision):
            loss = module.compute_loss(module.net(module._memory_format(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if module.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        if t0 is None:
            t0 = time.perf_counter()  # the first batch pays the worker start-up and warm-up
        else:
            n += x.shape[0]
    return n / (time.perf_counter() - t0)


def loading(data_dir: Path, work: Path, repeats: int, steps: int, device: str) -> list[str]:
    import torch

    from medseg.pipelines.build import build_module

    cfg, dm = _drive(data_dir, work, steps, device)
    torch.manual_seed(0)
    module = build_module(cfg, dm).to("cuda" if device == "cuda" else "cpu")
    module.setup("fit")
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=1e-4)
    variants = {"0 workers": (0, False), "1 worker": (1, False), "2 workers": (2, False),
                "0 workers + prefetch thread": (0, True)}
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, (workers, thread) in variants.items():
            dm.num_workers = workers
            loader = dm.train_dataloader()
            if device == "cuda" and workers:
                loader.pin_memory = True
            rates[name].append(_steps_rate(module, _prefetch(loader) if thread else loader,
                                           module.eval_precision, opt))
    base = statistics.median(rates["0 workers"])
    rows = ["| DRIVE loader | images/s | vs 0 workers |", "|---|---|---|"]
    for name, r in rates.items():
        rows.append(f"| {name} | {statistics.median(r):.2f} | {statistics.median(r) / base:.2f}x |")
    return rows


def compile_break_even(data_dir: Path, work: Path, steps: int, device: str) -> list[str]:
    import copy

    import torch

    from medseg.pipelines.build import build_module
    from medseg.utils import runtime

    cfg, dm = _drive(data_dir, work, steps, device)
    overrides = _DRIVE["overrides"]
    torch.manual_seed(0)
    base = build_module(cfg, dm).to("cuda" if device == "cuda" else "cpu")
    base.setup("fit")
    batches = list(dm.train_dataloader())
    precision = base.eval_precision

    def run(compiled: bool) -> tuple[float, float]:
        module = copy.deepcopy(base).train()
        net = torch.compile(module.net) if compiled else module.net
        opt = torch.optim.Adam(module.parameters(), lr=1e-4)
        times = []
        for batch in batches:
            t0 = time.perf_counter()
            x, y = batch["image"].to(module.device), batch["mask"].to(module.device)
            with runtime.autocast(x.device.type, precision):
                loss = module.compute_loss(net(module._memory_format(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        return times[0], statistics.median(times[2:])

    first_e, step_e = run(False)
    first_c, step_c = run(True)
    recipe = _cfg(overrides + NEW, data_dir, work / "compile0", None, device)
    per_epoch = int(recipe.data.samples_per_epoch) // int(recipe.data.batch_size)
    saved = (step_e - step_c) * per_epoch
    extra = first_c - first_e
    verdict = (f"break-even after {extra / saved:.1f} epochs" if saved > 0
               else "never pays back (compiled steps are not faster)")
    return [f"compile ({precision}): first step {first_c:.1f} s compiled vs {first_e:.2f} s eager; steady step "
            f"{1000 * step_c:.1f} ms vs {1000 * step_e:.1f} ms ({step_e / step_c:.2f}x); {per_epoch} steps per "
            f"epoch: {verdict}; the default budget is 12 epochs (conf/trainer/cpu.yaml)."]


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="about a minute: fewer steps and repeats")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--compile", action="store_true", help="also measure torch.compile's break-even (minutes on CPU)")
    p.add_argument("--out", type=Path, help="write the Markdown section to this file (atomically)")
    p.add_argument("--only", default="throughput,bf16,loading",
                   help="comma-separated sections: throughput, bf16, loading (compile: --compile)")
    args = p.parse_args(argv)
    only = set(args.only.split(",")) | ({"compile"} if args.compile else set())
    repeats = 2 if args.quick else 3
    steps = {"drive": 6, "handbone": 2, "brats": 2} if args.quick else {"drive": 30, "handbone": 8, "brats": 8}
    if args.device == "cuda":
        steps = {k: v * 4 for k, v in steps.items()}
    lines = [header(f"Training throughput: old default vs speed policy ({args.device})"),
             f"Interleaved repeats: {repeats}; steps per repeat: {steps} (first step excluded). Shared machine: "
             "compare the ratios, not the absolute figures.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, work = Path(tmp) / "data", Path(tmp) / "work"
        with contextlib.redirect_stderr(open(os.devnull, "w")) if args.quick else contextlib.nullcontext():
            sections = {
                "throughput": lambda: throughput(data_dir, work, repeats, steps, args.device, args.quick),
                "bf16": lambda: bf16_accuracy(data_dir, work, steps["drive"], args.device),
                "loading": lambda: loading(data_dir, work, repeats, steps["drive"], args.device),
                "compile": lambda: compile_break_even(data_dir, work, steps["drive"], args.device),
            }
            for name, section in sections.items():
                if name in only:
                    lines += ["", *section()]
                    log(f"{name} done:\n" + "\n".join(lines[-6:]))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from medseg.utils.io import write_text_atomic

        write_text_atomic(args.out, text)
    return text


if __name__ == "__main__":
    main()
