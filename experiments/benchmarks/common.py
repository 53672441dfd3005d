"""Shared helpers for the benchmarks: timing, machine description, results file."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

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
