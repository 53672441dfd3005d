"""Shared helpers for the benchmarks: timing, machine description, results file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from lightning.pytorch.callbacks import Callback  # noqa: E402  (after the environment is set)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED_DRIVE = REPO.parent / "shared" / "data" / "DRIVE"


def timed(fn: Callable[[], object], repeats: int = 3) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` calls (seconds) and all the times."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()} ({cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
            f"{dev}); Python {platform.python_version()}, torch {torch.__version__}")


def versions() -> str:
    import importlib.metadata as md

    names = ("torch", "lightning", "monai", "torchmetrics", "segmentation-models-pytorch", "hydra-core")
    return ", ".join(f"{n} {md.version(n)}" for n in names)


def header(title: str) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"## {title}\n\n_{now}; {machine()}; {versions()}_\n"


def run_medseg(module: str, args: list[str], cwd: Path, **env: str) -> float:
    """Run a medseg command (``python -m <module> <args>``) in a fresh process, as a user would, with
    this checkout on ``PYTHONPATH`` and ``env`` added; its wall seconds. A failure stops the benchmark
    with the command and the tail of its stderr."""
    import subprocess
    import sys

    full = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", **env,
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def fit_clock_overrides(path: Path) -> list[str]:
    """Hydra overrides adding :class:`FitClock` to a ``medseg-train`` run (writes ``path``)."""
    return ["+callbacks.fit_clock._target_=common.FitClock", f"+callbacks.fit_clock.path={path}"]


class FitClock(Callback):
    """Wall-clock seconds of a Lightning fit, written to ``path`` as JSON when it ends.

    ``fit_s``: from the first training epoch's start to the end of training (every epoch with its
    validation, excluding data setup and model construction); ``epoch_s``: the last epoch's time
    with its validation (the first epoch also pays one-off warm-up costs); ``epoch_starts_s``: when
    each epoch started, from the first one's start (differences: whole epochs, with their validation
    and checkpoints, without the end-of-fit work that ``epoch_s`` includes).
    """

    def __init__(self, path: str) -> None:
        self.path, self.starts = Path(path), []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        now = time.perf_counter()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"fit_s": now - self.starts[0], "epochs": trainer.current_epoch,
                                         "epoch_s": now - self.starts[-1],
                                         "epoch_starts_s": [t - self.starts[0] for t in self.starts]}))
