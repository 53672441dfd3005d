"""Sliding-window inference: medseg's ``Predictor`` against a direct MONAI ``sliding_window_inference``.

Same network (``medseg.models.unet.UNet``, small, fixed seed, eval mode), same input, same ROI,
overlap 0.25, Gaussian blending, same ``sw_batch_size``, under ``torch.no_grad`` in both:

* 2D: a 3-channel 2048x2048 image, 29 output classes (hand-bone X-ray size), ROI 512x512;
* 3D: a 4-channel 240x240x155 volume, 3 output regions (BraTS size), ROI 96^3.

Reported: max |difference| of the logits, median time of ``--repeats`` interleaved calls and the
time ratio (medseg / MONAI), and peak memory of one call in a fresh subprocess per library and
case (CPU: peak RSS (``ru_maxrss``) minus the RSS just before the call; CUDA:
``torch.cuda.max_memory_allocated`` minus the allocation before the call) and its ratio.

Run:  python experiments/benchmarks/bench_sliding_window.py [--device cuda]   (2-4 min on 2 CPU cores)
Not a test: the times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header


@dataclass(frozen=True)
class Case:
    """One benchmark configuration: input shape ``(C, *spatial)``, output classes, network, window."""

    name: str
    shape: tuple[int, ...]
    classes: int
    roi: tuple[int, ...]
    base: int = 8
    depth: int = 3
    sw_batch_size: int = 4
    overlap: float = 0.25

    @property
    def spatial_dims(self) -> int:
        return len(self.shape) - 1


CASES = {
    "2d": Case("2D 2048x2048, 3 -> 29 classes", (3, 2048, 2048), 29, (512, 512), base=4, depth=3),
    "3d": Case("3D 240x240x155, 4 -> 3 regions", (4, 240, 240, 155), 3, (96, 96, 96), base=4, depth=3),
}


def build(case: Case, device: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The network (seeded, eval mode) and the input ``(1, C, *spatial)``, both on ``device``."""
    from medseg.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(case.shape[0], case.classes, spatial_dims=case.spatial_dims, depth=case.depth,
               base_channels=case.base).eval().to(device)
    image = torch.randn(1, *case.shape, generator=torch.Generator().manual_seed(1)).to(device)
    return net, image


def medseg_infer(case: Case, net, image: torch.Tensor) -> torch.Tensor:
    from medseg.inference import make_inferer

    return make_inferer(_inference_cfg(case), net)(image, net)


def _inference_cfg(case: Case):
    """``conf/inference/sliding_window.yaml`` with the case's window (what a run builds)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "inference" / "sliding_window.yaml")
    cfg.roi_size, cfg.overlap, cfg.sw_batch_size, cfg.mode = list(case.roi), case.overlap, case.sw_batch_size, "gaussian"
    return cfg


def monai_infer(case: Case, net, image: torch.Tensor) -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        return sliding_window_inference(image, case.roi, case.sw_batch_size, net, overlap=case.overlap,
                                        mode="gaussian")


IMPLS = {"medseg": medseg_infer, "MONAI": monai_infer}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_both(case: Case, device: str, repeats: int) -> tuple[dict[str, float], dict[str, list[float]], float]:
    """Median seconds per library over interleaved repeats, all the times, and max |diff| of the
    first repeat's outputs. One warm-up call each on a single window first (thread pools, kernels)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    net, image = build(case, device)
    crop = image[(slice(None), slice(None), *(slice(0, r) for r in case.roi))]
    for fn in IMPLS.values():
        fn(case, net, crop)
    times: dict[str, list[float]] = {name: [] for name in IMPLS}
    first: dict[str, torch.Tensor] = {}
    for i in range(repeats):
        for name, fn in IMPLS.items():
            _sync(device)
            t0 = time.perf_counter()
            out = fn(case, net, image)
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            if i == 0:
                first[name] = out
            del out
        if i == 0:
            diff = float((first.pop("medseg") - first.pop("MONAI")).abs().max())
    return {k: statistics.median(v) for k, v in times.items()}, times, diff


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory_child(case: Case, impl: str, device: str) -> int:
    """Bytes by which one call raises the peak (run in a fresh process: ``ru_maxrss`` never resets).

    Every import happens before the call, so only the call's own allocations count."""
    import monai.inferers  # noqa: F401

    import medseg.inference.inferers  # noqa: F401

    net, image = build(case, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = IMPLS[impl](case, net, image)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    before = _rss_bytes()
    out = IMPLS[impl](case, net, image)
    del out
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before


def peak_memory(case: Case, impl: str, device: str) -> int:
    """:func:`peak_memory_child` in a fresh interpreter."""
    arg = json.dumps({"case": asdict(case), "impl": impl, "device": device})
    res = subprocess.run([sys.executable, __file__, "--child", arg], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement of {impl} on {case.name} failed:\n{res.stderr[-2000:]}")
    return int(res.stdout.strip().splitlines()[-1])


def run(device: str = "cpu", repeats: int = 3, cases: tuple[str, ...] = ("2d", "3d")) -> str:
    """All ``cases``; returns the markdown section (also printed)."""
    torch.set_grad_enabled(False)
    mem_kind = "peak CUDA allocation" if device.startswith("cuda") else "peak RSS growth"
    lines = [header(f"3. Sliding-window inference: medseg Predictor vs MONAI ({device})"),
             (f"Same U-Net, input, ROI, overlap 0.25, Gaussian weighting and sw_batch_size; time: median of {repeats} "
              f"interleaved calls after a one-window warm-up; memory: {mem_kind} of one call in a fresh process. "
              "Ratios are medseg / MONAI (target: time <= 1.0x, memory <= 1.0x, max |diff| <= 1e-5)."), "",
             "| case | net | ROI | max abs diff | medseg s | MONAI s | time ratio | medseg MiB | MONAI MiB | memory ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in cases:
        case = CASES[key]
        med, all_times, diff = time_both(case, device, repeats)
        mem = {impl: peak_memory(case, impl, device) for impl in IMPLS}
        row = (f"| {case.name} | U-Net base {case.base}, depth {case.depth} | {'x'.join(map(str, case.roi))}, "
               f"batch {case.sw_batch_size} | {diff:.1e} | {med['medseg']:.2f} | {med['MONAI']:.2f} | "
               f"{med['medseg'] / med['MONAI']:.2f}x | {mem['medseg'] / 2**20:.0f} | {mem['MONAI'] / 2**20:.0f} | "
               f"{mem['medseg'] / mem['MONAI']:.2f}x |")
        print(row, f"(times: {all_times})", flush=True)
        lines.append(row)
    lines.append("")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        spec = json.loads(a.child)
        c = spec["case"]
        case = Case(**{**c, "shape": tuple(c["shape"]), "roi": tuple(c["roi"])})
        torch.set_grad_enabled(False)
        print(peak_memory_child(case, spec["impl"], spec["device"]))
    else:
        run(a.device, a.repeats, tuple(a.cases))
