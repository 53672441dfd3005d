"""Is data loading the bottleneck? Samples/s of each DataModule's training loader next to the
default model's training step rate, and the effect of the BraTS ``.npy`` cache.

For every dataset the ``<name>_synth`` config is composed as ``medseg-train`` would (synthetic data
written once under ``--data-dir``), then:

* loader: samples/s over ``--batches`` batches of ``train_dataloader()`` (patch sampling,
  augmentation, collation), for each ``--workers`` setting;
* model: samples/s of one optimiser step (forward, loss, backward, step) of the default model on
  one such batch, on ``--device``;
* BraTS: ``setup()`` time reading NIfTI (first run: read + preprocess + write the cache) against
  reading the cache, and loader throughput in memory vs memory-mapped (``lazy``).

Run:  python experiments/benchmarks/bench_dataloading.py --out experiments/benchmarks/dataloading.md
Not a test: numbers depend on the machine (CPU count, disk, other load).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header

from medseg.cli._hydra import config_dir
from medseg.utils.io import write_text_atomic

# small synthetic sizes so the benchmark runs on a laptop CPU; override with --set
SIZES = {
    "drive": ["data.synthesize.n_train=6", "data.synthesize.n_test=2"],
    "chase": ["data.synthesize.n_subjects=4"],
    "jsrt": ["data.synthesize.n=12"],
    "handbone": ["data.synthesize.n_train=4", "data.synthesize.n_test=1"],
    "folder": [],
    "brats": ["data.synthesize.n_cases=4"],
}


def compose_data(name: str, data_dir: Path, extra: list[str]):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=[f"data={name}_synth", f"paths.data_dir={data_dir}",
                                                        "hydra.runtime.output_dir=/tmp", *SIZES[name], *extra])


def loader_rate(dm, batches: int) -> float:
    dm._train_ds = None
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        n += batch["image"].shape[0]
    return n / (time.perf_counter() - t0)


def model_rate(cfg, dm, device: str, steps: int) -> float:
    from medseg.pipelines.build import build_module

    module = build_module(cfg, dm).to(device)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    batch = next(iter(dm.train_dataloader()))
    image, mask = batch["image"].to(device), batch["mask"].to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = module.compute_loss(module(image), mask)
        loss.backward()
        opt.step()

    step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * image.shape[0] / (time.perf_counter() - t0)


def brats_cache(data_dir: Path, batches: int) -> list[str]:
    """Setup time and loader rate with and without the cache, on real-size (240x240x155) volumes."""
    cfg = compose_data("brats", data_dir / "full_size", ["data.synthesize.shape=[240,240,155]",
                                                         "data.patch_size=[128,128,128]"])
    cache = Path(cfg.data.cache_dir)
    shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for label, lazy, cache_dir in (("no cache, in memory", False, None), ("cache: first run (writes .npy)", True, str(cache)),
                                   ("cache: later run, memory-mapped", True, str(cache)),
                                   ("cache: later run, in memory", False, str(cache))):
        dm = instantiate(cfg.data, _convert_="partial", lazy=lazy, cache_dir=cache_dir, num_workers=0)
        dm.prepare_data()
        t0 = time.perf_counter()
        dm.setup("fit")
        setup_s = time.perf_counter() - t0
        rate = loader_rate(dm, batches)
        rows.append(f"| {label} | {setup_s:.2f} | {rate:.1f} |")
    return rows


def run(datasets: Sequence[str] = tuple(SIZES), workers: Sequence[int] = (0, 2), batches: int = 20, steps: int = 3,
        device: str | None = None, data_dir: str | Path | None = None) -> str:
    """Measure every dataset in ``datasets``; returns the markdown section (rows are printed as they come).

    Synthetic data is written under ``data_dir`` (default: a temporary folder, removed afterwards)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if data_dir is None:
        with tempfile.TemporaryDirectory(prefix="medseg-bench-") as tmp:
            return run(datasets, workers, batches, steps, device, tmp)
    data_dir = Path(data_dir)

    lines = ["| dataset | batch | patch | " + " | ".join(f"loader samples/s, {w} workers" for w in workers)
             + f" | model samples/s ({device}) | loader / model |", "|---|---|---|" + "---|" * (len(workers) + 2)]
    for name in datasets:
        cfg = compose_data(name, data_dir, [])
        rates = []
        for w in workers:
            dm = instantiate(cfg.data, _convert_="partial", num_workers=w)
            dm.prepare_data()
            dm.setup("fit")
            rates.append(loader_rate(dm, batches))
        m = model_rate(cfg, dm, device, steps)
        line = (f"| {name} | {cfg.data.batch_size} | {'x'.join(map(str, cfg.data.patch_size))} | "
                + " | ".join(f"{r:.1f}" for r in rates) + f" | {m:.1f} | {max(rates) / m:.1f}x |")
        print(line, flush=True)
        lines.append(line)

    cache_rows = brats_cache(data_dir, batches) if "brats" in datasets else []
    for r in cache_rows:
        print(r, flush=True)
    intro = [
        header(f"2. Data loading ({device})"),
        ("Synthetic data at the `<name>_synth` configs' sizes (reduced case counts, see `SIZES` in "
         f"`bench_dataloading.py`). Loader: samples/s over {batches} batches of `train_dataloader()`; model: "
         f"samples/s of an optimiser step of the default model on one batch ({steps} steps). Loading is not the "
         "bottleneck where loader / model > 1."), "",
    ]
    text = "\n".join(intro + lines)
    if cache_rows:
        text += ("\n\n**BraTS: the .npy cache.** Four synthetic cases at the real 240x240x155, 4 modalities, "
                 "128^3 patches, crop to the brain + z-score; `setup()` reads (and preprocesses) every case.\n\n"
                 "| setup | setup() s | loader samples/s (0 workers) |\n|---|---|---|\n")
        text += "\n".join(cache_rows)
    return text + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(SIZES))
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-dir", default=None, help="where synthetic data is written (default: a temp folder)")
    p.add_argument("--out", default=None, help="markdown file for the results")
    args = p.parse_args()
    text = run(args.datasets, args.workers, args.batches, args.steps, args.device, args.data_dir)
    if args.out:
        write_text_atomic(args.out, "# Data loading benchmark\n\n" + text)
        print(f"written {args.out}")


if __name__ == "__main__":
    main()
