"""Planning rules: fingerprint + measurements -> experiment choices, each with the reason that drove it.
The rules are written out, with their sources, in ``docs/plan.md``."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

#: nnU-Net's foreground oversampling (1/3 of patches forced onto foreground), raised for rare classes
FG_OVERSAMPLE, FG_OVERSAMPLE_RARE, RARE_FREQUENCY = 0.33, 0.5, 0.01
#: the bottleneck keeps at least this many pixels per side (nnU-Net stops pooling at 4-8)
MIN_BOTTLENECK = 8
#: at least this many optimiser steps in the budget on CPU, else the patch shrinks (a CPU budget rule of
#: medseg, where time, not memory, binds). 2D crops: measured on the real DRIVE 4-fold CV at 25 min
#: (results.md section 9d): 1000 steps of 144 px patches lost -0.0029 Dice [-0.0054, -0.0008] to the
#: shipped drive_unet's ~3100 steps of 64 px, while 2000 steps (96 px) scored +0.0014 [-0.0002, +0.0031];
#: on synthetic hand bones at 3 min, 1840 steps of 64 px beat handbone_smp by +0.42 (plan_results.md).
#: A patch holding the whole (median) image of compact objects keeps all their context and needs no
#: sliding window: it needs only MIN_STEPS_WHOLE (synthetic JSRT at 3 min: the whole 128 px image, 950
#: steps, +0.0007 [+0.0002, +0.0013] against jsrt_unet, which trains on it too; 64 px crops of the same
#: images are not measured). Thin structures (vessels) get no such exception: they need many steps, not
#: context. 3D: 600 (synthetic BraTS at 3 min: 48x64x48, +0.27 against brats_unet3d; not measured at
#: 25 min)
MIN_STEPS_2D, MIN_STEPS_WHOLE, MIN_STEPS_3D = 2000, 600, 600
#: 2D batch: at least this many patches per step where memory allows (nnU-Net's 2D batches are 12 or
#: more), at most this cap (medseg's shipped 2D recipes use 16)
BATCH_FLOOR_2D, BATCH_CAP_2D = 12, 16
#: 3D batch (nnU-Net's 3D default)
BATCH_3D = 2
#: validation may take at most this share of an epoch (steps per epoch grow to keep it so)
MAX_VAL_SHARE = 0.2
#: share of the budget left for what the timed step leaves out (Lightning's loop, the weight EMA, two
#: checkpoint writes per epoch, start-up); validation time is estimated from a measured forward pass and
#: charged per epoch. Measured on the real DRIVE 4-fold CV (2026-12-02, results.md section 9d): with steps
#: timed under the run's bf16 policy, real epochs took 1.04-1.23x the planned ones, so at the earlier 5 %
#: three of four folds hit max_time 1-2 epochs before the end of their schedule
OVERHEAD_SHARE = 0.20
#: a plan uses at most this share of the memory budget: the CPU figure is sampled (RSS, every 1 ms) and a
#: second measurement of the same step varies by a few percent
MEMORY_MARGIN = 0.9



def is_thin(fp: dict) -> bool:
    """Every class thin (vessel-like) in the fingerprint's object analysis."""
    objects = fp.get("objects") or []
    return bool(objects) and all(str(o.get("shape", "")).startswith("thin") for o in objects)


def min_steps(dims: int, whole_image: bool = False, thin: bool = False) -> int:
    """Fewest optimiser steps a CPU plan leaves in its budget at a candidate patch: :data:`MIN_STEPS_3D`
    in 3D; in 2D :data:`MIN_STEPS_WHOLE` for a patch holding the whole median image of objects that
    are not all thin (:func:`is_thin`), else :data:`MIN_STEPS_2D`."""
    if dims == 3:
        return MIN_STEPS_3D
    return MIN_STEPS_WHOLE if whole_image and not thin else MIN_STEPS_2D


_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _LIBC.malloc_trim  # noqa: B018  glibc only
except (OSError, AttributeError):
    _LIBC = None


@dataclass
class Choice:
    key: str
    value: Any            # a config value: number, string, list or mapping
    reason: str


@dataclass
class Plan:
    choices: list[Choice] = field(default_factory=list)
    measurements: dict = field(default_factory=dict)

    def add(self, key: str, value, reason: str) -> None:
        self.choices.append(Choice(key, value, reason))

    def get(self, key: str):
        return next(c.value for c in self.choices if c.key == key)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def device_memory_bytes(device: str, memory_gb: float | None = None) -> tuple[int, str]:
    """Memory a plan may use: ``memory_gb`` if given, the GPU's total (CUDA), or half of MemAvailable
    (CPU: the machine is shared with the data, the OS and other jobs)."""
    if memory_gb:
        return int(memory_gb * 2**30), f"{memory_gb:g} GiB (given: memory_gb)"
    if device == "cuda" and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        return int(total * 0.85), f"85% of the GPU's {total / 2**30:.1f} GiB"
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    return avail // 2, f"half of the {avail / 2**30:.1f} GiB available now"


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (``VmHWM``) to the current level (Linux
    ``/proc/self/clear_refs`` 5). Exact and independent of machine load, unlike sampling; False where
    the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """The resident-set high-water mark since the last :func:`reset_peak_rss` (``VmHWM``)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def param_bytes(module) -> int:
    """Bytes of the network's parameters (a training step adds a gradient and two Adam moments each)."""
    return int(sum(p.numel() * p.element_size() for p in module.net.parameters()))


def measure_step(module, batch: int, patch: list[int], in_channels: int, device: str, repeats: int = 3,
                 warmup: int = 1) -> dict:
    """Peak memory and time of one training step (forward + backward + optimiser) at ``(batch, patch)``.
    CUDA: the allocator's peak; CPU: the kernel's resident-set high-water mark over the steps (reset
    before them; sampled every millisecond where it cannot be reset), minus the level before
    (activations, gradients and workspace of this step). ``total_bytes``
    adds the parameters themselves: the figure compared with the memory budget. ``step_s`` is the
    median of ``repeats`` steps after ``warmup`` steps.

    The step runs under the module's speed policy, as the training will (the precision's autocast
    around forward and loss, channels-last where the module uses it): until 2026-12-02 it ran in
    float32, contiguous, and the plans' bf16 runs on this CPU finished their epochs in 55 % of the
    budget (experiments/benchmarks/results.md section 9d)."""
    from medseg.utils.runtime import autocast

    dev = torch.device(device)
    module = module.to(dev).train()
    module.setup("fit")  # the network in channels-last where the module uses it
    x = module.memory_format(torch.randn(batch, in_channels, *patch, device=dev))
    precision = getattr(module, "eval_precision", "32-true")
    k = module.task.out_channels
    if module.task.kind == "multiclass":
        mask = torch.randint(0, k, (batch, *patch), device=dev)
    elif module.task.kind == "binary":
        mask = torch.randint(0, 2, (batch, *patch), device=dev)
    else:
        mask = torch.randint(0, 2, (batch, k, *patch), device=dev, dtype=torch.uint8)
    opt = torch.optim.Adam(module.net.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(dev.type, precision):  # as Lightning's precision plugin wraps training_step
            loss = module.compute_loss(module.net(x), mask)
        loss.backward()
        opt.step()

    peak, stop = [0], threading.Event()
    gc.collect()
    if dev.type != "cuda" and _LIBC is not None:
        _LIBC.malloc_trim(0)  # hand freed memory back to the OS, so the RSS baseline is this step's own
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
        hwm = reset_peak_rss()

        def sample() -> None:  # fallback where the high-water mark cannot be reset (misses short peaks)
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample, daemon=True)
        if not hwm:
            sampler.start()
    for _ in range(max(warmup, 1)):  # allocations, optimiser state, oneDNN/cuDNN kernel choice
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        used = torch.cuda.max_memory_allocated() - base
    else:
        stop.set()
        if hwm:
            used = peak_rss_bytes() - base
        else:
            sampler.join()
            used = max(peak[0], _rss_bytes()) - base
    opt.zero_grad(set_to_none=True)
    peak_b = int(max(used, 0))
    return {"batch": batch, "patch": list(patch), "peak_bytes": peak_b, "total_bytes": peak_b + param_bytes(module),
            "step_s": float(np.median(times)), "measured_on": device}


@dataclass
class StepModel:
    """Linear model of a training step, fitted from two measured steps of the same probe patch at batch 1
    and batch ``b``: per sample-voxel activation bytes and seconds, plus a constant. A fully
    convolutional net's activations are linear in batch x voxels; parameters, gradients and Adam
    moments (4x the parameter bytes) are added for the depth of the patch asked about. This is how a
    CUDA plan is made without the GPU (``device=cuda memory_gb=G`` on a CPU machine): CUDA stores the
    same activations, so the CPU-fitted per-voxel bytes carry over (cuDNN workspace is not modelled)."""

    bytes_per_voxel: float
    const_bytes: float
    s_per_voxel: float
    probe: list[dict]

    @classmethod
    def fit(cls, m1: dict, mb: dict, probe_params: int) -> StepModel:
        vox = float(np.prod(m1["patch"]))
        # where the batch difference is lost in the noise, the whole mean step per sample (an over-estimate)
        bpv = max((mb["peak_bytes"] - m1["peak_bytes"]) / (mb["batch"] - 1), mb["peak_bytes"] / mb["batch"] / 2) / vox
        const = max(m1["peak_bytes"] - bpv * vox - 3 * probe_params, 0.0)
        # seconds from the batch-b step alone: a batch-1 step is mostly per-step overhead and the most exposed
        # to a stall (one took 3.5 s against 0.11 s at batch 4 on the loaded machine, and the max of the two
        # had every candidate skipped but the smallest)
        spv = mb["step_s"] / (mb["batch"] * vox)
        return cls(bpv, const, spv, [m1, mb])

    def total_bytes(self, batch: int, patch: list[int], params: int) -> int:
        return int(self.const_bytes + 4 * params + self.bytes_per_voxel * batch * float(np.prod(patch)))

    def step_s(self, batch: int, patch: list[int]) -> float:
        return self.s_per_voxel * batch * float(np.prod(patch))


def round_down(x: float, multiple: int) -> int:
    return max(multiple, int(x // multiple) * multiple)


def depth_for(patch: list[int], max_depth: int = 5) -> int:
    """Poolings until the smallest patch side would drop below :data:`MIN_BOTTLENECK`."""
    return int(min(max_depth, max(2, math.floor(math.log2(min(patch) / MIN_BOTTLENECK)))))


def _sig(x: float, digits: int = 5) -> float:
    """``x`` to ``digits`` significant digits (readable numbers in the written experiment)."""
    return float(f"{x:.{digits}g}")


#: nnU-Net: an axis whose spacing is this many times the finest one is "anisotropic"
ANISOTROPY = 3.0
#: a case whose spacing is within this relative distance of the target is not resampled
SPACING_TOLERANCE = 0.01


def resampling_target(fp: dict) -> tuple[list[float], str] | None:
    """The voxel size every 3D case is resampled to (``data.spacing``), and the reason; ``None`` when
    the fingerprint has no spacing or every case is already there.

    nnU-Net: the median spacing, except that when the coarsest axis is more than 3 times the finest,
    that axis goes to the 10th percentile of its spacings (finer than the median: the thin-slice cases
    keep their detail)."""
    sp = fp.get("spacing")
    if fp.get("spatial_dims") != 3 or not sp:
        return None
    median, p10 = sp["median"], sp["p10"]
    coarse = int(np.argmax(median))
    aniso = fp.get("anisotropy", 1.0) > ANISOTROPY
    target = [_sig(min(m, p) if aniso and i == coarse else m) for i, (m, p) in enumerate(zip(median, p10))]
    if all(abs(lo - t) <= SPACING_TOLERANCE * t and abs(hi - t) <= SPACING_TOLERANCE * t
           for lo, hi, t in zip(sp["min"], sp["max"], target)):
        return None
    why = (f"case spacings {sp['min']}-{sp['max']} mm, median {median}: every case resampled to "
           + (f"the median, axis {coarse} at its 10th percentile (anisotropy {fp['anisotropy']:.1f} > {ANISOTROPY:g})"
              if aniso else "the median")
           + " (nnU-Net's target spacing); images linearly, masks nearest; predictions are written back on "
             "each case's own grid")
    return target, why


def normalisation(fp: dict) -> tuple[list[dict], str]:
    """Preprocessing by modality (nnU-Net: CT -> global clipping + z-score; otherwise per-image z-score)."""
    roi = fp["has_roi"]
    m = fp["modality"]
    if m.startswith("colour photograph"):
        return ([{"_target_": "medseg.data.preprocess.GreenWeightedGray"},
                 {"_target_": "medseg.data.preprocess.ZScore", "within_roi": roi},
                 {"_target_": "medseg.data.preprocess.MinMax", "within_roi": roi},
                 {"_target_": "medseg.data.preprocess.CLAHE", "clip_limit": 0.01},
                 {"_target_": "medseg.data.preprocess.Gamma", "gamma": 1.2}],
                f"modality '{m}': the vessel predecessor projects' contrast pipeline, which beat z-scored RGB on real DRIVE "
                "(conf/experiment/drive_unet.yaml)")
    if m.startswith("MR"):
        return ([{"_target_": "medseg.data.preprocess.ZScore", "within_roi": roi, "nonzero": True}],
                f"modality '{m}': per-image z-score over non-zero voxels (nnU-Net's MR / BraTS normalisation)")
    if m.startswith("CT") and fp.get("intensity_foreground"):
        f = fp["intensity_foreground"]
        low, high = [_sig(c["p0.5"]) for c in f], [_sig(c["p99.5"]) for c in f]
        mean, std = [_sig(c["mean"]) for c in f], [_sig(c["std"]) for c in f]
        one = len(f) == 1  # CT-like is guessed for 1 channel: scalars read better
        return ([{"_target_": "medseg.data.preprocess.ClipIntensity", "low": low[0] if one else low,
                  "high": high[0] if one else high},
                 {"_target_": "medseg.data.preprocess.ZScore", "within_roi": False, "mean": mean[0] if one else mean,
                  "std": std[0] if one else std}],
                f"modality '{m}': clip to the training foreground's [0.5, 99.5] percentiles {low}-{high} and "
                f"z-score with its mean {mean} and std {std}, the same for every case (nnU-Net's CT normalisation)")
    return ([{"_target_": "medseg.data.preprocess.ZScore", "within_roi": roi}],
            f"modality '{m}': per-image z-score{' inside the ROI' if roi else ''} (nnU-Net's default)")


#: preprocessing steps that change the geometry or the channels, not the intensities: the fingerprint was
#: computed after them, so a plan keeps them from the data config (jsrt's Resize to 128 px, brats'
#: CropToForeground) and replaces only the intensity steps
STRUCTURAL_STEPS = ("Resize", "CropToForeground", "FieldOfView", "Resample", "GreenWeightedGray")


def _step_name(step: dict) -> str:
    return str(step.get("_target_", "")).rsplit(".", 1)[-1]


def with_structural_steps(data_steps: list, planned: list[dict]) -> tuple[list[dict], list[str]]:
    """``planned`` (intensity normalisation) after the data config's structural steps
    (:data:`STRUCTURAL_STEPS`, in their order), without repeating one; and the names kept. Until
    2026-12-02 the planned list replaced the data config's whole list: a JSRT plan lost its Resize to
    128 px and trained on the 512 px images its fingerprint had not seen."""
    kept = [dict(s) for s in data_steps or [] if isinstance(s, dict) and _step_name(s) in STRUCTURAL_STEPS]
    names = [_step_name(s) for s in kept]
    return kept + [p for p in planned if _step_name(p) not in names], names
