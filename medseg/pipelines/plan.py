"""``medseg-plan``: fingerprint a dataset and write a commented, runnable experiment for it.

The fingerprint (:mod:`medseg.plan.fingerprint`) is computed on the training pool; the rules
(:mod:`medseg.plan.rules`, written out in ``docs/plan.md``) turn it, plus measurements of the model's
peak memory and step time at candidate sizes on the target device, into an experiment YAML whose
every line names the value that drove it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from medseg.errors import ConfigError
from medseg.pipelines.build import build_datamodule, build_module
from medseg.plan import rules
from medseg.plan.fingerprint import fingerprint, summary_lines
from medseg.utils import runtime
from medseg.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def _module(cfg: DictConfig, dm, model: str, loss: str, depth: int, conf_dir: str | Path, device: str = "cpu"):
    """The planned model, with the speed policy (precision, channels-last) its run will resolve on
    ``device``: the planned experiment's ``trainer: cpu|gpu`` with ``precision: auto``."""
    c = OmegaConf.create(cast(dict, OmegaConf.to_container(cfg, resolve=True)))
    with open_dict(c):
        c.trainer.accelerator = "gpu" if device == "cuda" else "cpu"
        c.model = OmegaConf.load(Path(conf_dir) / "model" / f"{model}.yaml")
        c.model.depth = depth
        if model == "unet3d":
            c.model.dropout = 0.0
        c.loss = OmegaConf.load(Path(conf_dir) / "loss" / f"{loss}.yaml")
        c.module = {}
    return build_module(c, dm)


def _fwd_seconds(module, batch: int, patch: list[int], in_ch: int, device: str) -> float:
    """Seconds of one no-grad forward pass of ``batch`` windows, under the module's inference policy
    (autocast and memory format, as ``SegmentationModule.predict_logits``)."""
    from medseg.utils.runtime import autocast

    module = module.to(device).eval()
    module.setup("predict")
    x = module.memory_format(torch.randn(batch, in_ch, *patch, device=device))
    times = []
    with torch.no_grad(), autocast(torch.device(device).type, module.eval_precision):
        module.net(x)  # warm-up
        for _ in range(3):
            t0 = time.perf_counter()
            module.net(x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _load_seconds(dm, patch: list[int], batch: int, foreground_fraction: float, batches: int = 4) -> float:
    """Seconds to assemble one training batch in this process (patch sampling, foreground centring,
    augmentation, collation): the training dataset the run will build, at the planned patch and batch.
    Where the loader has no workers (the CPU default) this sits on the critical path of every step (3 ms
    of a 263 ms step for 12 fundus patches of 144 px with flips; augmented 3D patches cost more)."""
    from torch.utils.data import default_collate

    from medseg.data.datasets import PatchDataset

    ds = PatchDataset(dm.cases["train"], patch, batch * (batches + 1), foreground_fraction, augment=dm.augment,
                      seed=0, max_centres=dm.max_centres)
    default_collate([ds[i] for i in range(batch)])  # warm-up (first augmentation, caches)
    t0 = time.perf_counter()
    for b in range(1, batches + 1):
        default_collate([ds[i] for i in range(b * batch, (b + 1) * batch)])
    return (time.perf_counter() - t0) / batches


@dataclass
class _Sizing:
    """What the patch/batch search needs: how to build and measure the model on the target device."""

    cfg: DictConfig
    dm: Any               # SegmentationDataModule
    conf_dir: str | Path
    model: str
    loss: str
    in_ch: int
    dims: int
    device: str           # the device planned for
    measure_on: str       # where steps are measured: the device, or "cpu" for a CUDA plan made without a GPU
    mem: int              # memory budget (bytes)
    train_s: float        # seconds of training in the budget
    thin: bool = False    # every class thin (rules.is_thin): no whole-image exception to the step rule

    def module(self, patch: list[int]):
        return _module(self.cfg, self.dm, self.model, self.loss, rules.depth_for(patch), self.conf_dir, self.measure_on)

    def measure(self, batch: int, patch: list[int], **kw) -> dict:
        return rules.measure_step(self.module(patch), batch, patch, self.in_ch, self.measure_on, **kw)

    @property
    def modelled(self) -> bool:
        """True for a CUDA plan made on a machine without a GPU (sizes from :class:`rules.StepModel`)."""
        return self.device != self.measure_on


def _candidates(median: list[int], dims: int) -> list[list[int]]:
    """Patches from the median image (capped at 512 px in 2D, 128 in 3D) down by 0.75 to 32 px sides."""
    cap = 128 if dims == 3 else 512
    patch = [rules.round_down(min(s, cap), 16) for s in median]
    out = [patch]
    while min(patch) > 32:
        patch = [rules.round_down(s * 0.75, 16) if s > 32 else s for s in patch]
        out.append(patch)
    return out


def _step_model(sz: _Sizing, largest: list[int]) -> rules.StepModel:
    """Probe (batch 1 and 4 of a 128 px 2D / 32 px 3D patch, at most the largest candidate) and fit."""
    probe = [min(p, q) for p, q in zip(largest, [32] * 3 if sz.dims == 3 else [128, 128])]
    module = sz.module(probe)
    m1 = rules.measure_step(module, 1, probe, sz.in_ch, sz.measure_on)
    m4 = rules.measure_step(module, 4, probe, sz.in_ch, sz.measure_on)
    return rules.StepModel.fit(m1, m4, rules.param_bytes(module))


def _batches(sz: _Sizing) -> list[int]:
    """Batches tried per patch, largest first: 2D 16 then the floor 12 (CPU: 12 first, steps count on a
    time budget), then below the floor only at the smallest patch; 3D: 2."""
    if sz.dims == 3:
        return [rules.BATCH_3D]
    if sz.device == "cpu":
        return [rules.BATCH_FLOOR_2D, rules.BATCH_CAP_2D]
    return [rules.BATCH_CAP_2D, rules.BATCH_FLOOR_2D]


def _choose_size(sz: _Sizing, median: list[int]) -> dict:
    """Largest patch (then batch) whose step fits ``MEMORY_MARGIN`` x the budget, measured (or, for a
    CUDA plan without a GPU, modelled), and on CPU leaves :func:`rules.min_steps` steps in the budget (fewer
    for a 2D patch holding the whole median image)."""
    limit = rules.MEMORY_MARGIN * sz.mem
    cands = _candidates(median, sz.dims)
    model = _step_model(sz, cands[0])
    tried: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for i, patch in enumerate(cands):
        last = i == len(cands) - 1
        # the whole median image (up to the 16 px rounding) in one patch: all its context, fewer steps needed
        min_steps = rules.min_steps(sz.dims, whole_image=all(p + 16 > m for p, m in zip(patch, median)),
                                    thin=sz.thin)
        params = rules.param_bytes(sz.module(patch))
        batches = _batches(sz) + (list(range(min(_batches(sz)) - 1, 0, -1)) if last else [])
        for batch in sorted(set(batches), key=lambda b: (b not in _batches(sz), -b if sz.device != "cpu" else b)):
            pred = model.total_bytes(batch, patch, params)
            steps = sz.train_s / max(model.step_s(batch, patch), 1e-9)
            if pred > 1.5 * limit or (sz.device == "cpu" and not last and steps < min_steps / 2):
                skipped.append({"batch": batch, "patch": patch, "predicted_bytes": pred, "predicted_steps": int(steps)})
                continue
            m: dict[str, Any]
            if sz.modelled:
                m = {"batch": batch, "patch": patch, "total_bytes": pred, "step_s": None, "measured_on": "model"}
            else:
                m = sz.measure(batch, patch)
            tried.append(m)
            fits = m["total_bytes"] <= limit
            enough = sz.device != "cpu" or last or sz.train_s / m["step_s"] >= min_steps
            if fits and enough:
                return {"patch": patch, "batch": batch, "chosen": m, "model": model, "tried": tried,
                        "skipped": skipped, "min_steps": min_steps}
    smallest = tried[-1] if tried else skipped[-1]
    need = float(smallest.get("total_bytes", smallest.get("predicted_bytes")) or 0)
    raise ConfigError(
        f"memory_gb={sz.cfg.get('memory_gb')}: even the smallest patch {cands[-1]} at batch 1 needs "
        f"{need / 2**20:.0f} MiB ({'modelled' if sz.modelled else 'measured on ' + sz.measure_on}), more than "
        f"{rules.MEMORY_MARGIN:.0%} of the {sz.mem / 2**20:.0f} MiB budget; raise memory_gb or use a smaller "
        "model (model.base_channels)")


def _setup(cfg: DictConfig, conf_dir: str | Path) -> tuple[object, dict, _Sizing, str]:
    """Check the options, fingerprint ``cfg.data`` and set up the patch/batch search."""
    device = str(cfg.device)
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device={device}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available() and not cfg.get("memory_gb"):
        raise ConfigError("device=cuda: no CUDA device here; state the GPU's memory (memory_gb=<GiB>) and the "
                          "plan is sized from a model fitted to CPU measurements, or plan with device=cpu")
    budget_s = float(cfg.budget_min) * 60
    if budget_s <= 0:
        raise ConfigError(f"budget_min={cfg.budget_min}: must be positive (minutes of training)")
    with open_dict(cfg):
        # the plan chooses the patch size itself: the data config's default (2D in data=folder, which
        # also reads volumes) must not be checked against the images or refused for them. The
        # datamodule checks the patch only in patch mode; the plan reads cases, never a train loader
        cfg.data.train_mode, cfg.data.resize = "resize", [1]
    dm = build_datamodule(cfg)
    fp = fingerprint(dm)
    mem, mem_note = rules.device_memory_bytes(device, cfg.get("memory_gb"))
    measure_on = device if device == "cpu" or torch.cuda.is_available() else "cpu"
    sz = _Sizing(cfg, dm, conf_dir, "unet3d" if fp["spatial_dims"] == 3 else "unet",
                 "dice_focal" if fp["task"] == "multiclass" else "bce_dice", int(dm.in_channels),
                 fp["spatial_dims"], device, measure_on, mem, budget_s * (1 - rules.OVERHEAD_SHARE),
                 rules.is_thin(fp))
    return dm, fp, sz, mem_note


def _size_reasons(plan: rules.Plan, sz: _Sizing, size: dict, model: rules.StepModel, median: list[int],
                  mem_note: str) -> None:
    patch, batch, m = size["patch"], size["batch"], size["chosen"]
    how = ("modelled (no GPU here: StepModel fitted to CPU steps, "
           f"{model.bytes_per_voxel:.0f} B per sample-voxel + 4x parameters)" if sz.modelled
           else f"measured on {sz.measure_on}: {m['step_s'] * 1000:.0f} ms/step")
    whole = (" (the whole median image of compact objects in one patch)"
             if sz.dims == 2 and size["min_steps"] == rules.MIN_STEPS_WHOLE else "")
    plan.add("data.patch_size", patch,
             f"median image {median}; largest candidate whose step fits {rules.MEMORY_MARGIN:.0%} of the memory "
             f"budget ({sz.mem / 2**30:.1f} GiB: {mem_note})"
             + (f" and leaves >= {size['min_steps']} steps in the budget{whole}" if sz.device == "cpu" else "")
             + f"; tried {[[t['batch'], t['patch']] for t in size['tried']]}"
             + (f"; {len(size['skipped'])} skipped by the probe's extrapolation" if size["skipped"] else ""))
    depth = rules.depth_for(patch)
    plan.add("model.depth", depth, f"smallest patch side {min(patch)} px: {depth} poolings leave a "
                                   f"{min(patch) // 2 ** depth} px bottleneck (target >= {rules.MIN_BOTTLENECK} px, "
                                   "at least 2 poolings; nnU-Net pools down to 4-8)")
    rule = (f"3D: nnU-Net's {rules.BATCH_3D}" if sz.dims == 3 else
            f"2D: {rules.BATCH_FLOOR_2D}-{rules.BATCH_CAP_2D} (nnU-Net's 2D batches are >= {rules.BATCH_FLOOR_2D}), "
            "below only when the smallest patch does not fit")
    plan.add("data.batch_size", batch, f"{rule}; step at batch {batch}: {m['total_bytes'] / 2**20:.0f} MiB "
                                       f"incl. parameters, {how}")
def make_plan(cfg: DictConfig, conf_dir: str | Path) -> tuple[dict, rules.Plan]:
    """Fingerprint ``cfg.data`` and plan an experiment for ``cfg.device`` and ``cfg.budget_min``
    (the model, loss and weight-EMA configs are read from ``conf_dir``)."""
    _dm, fp, sz, mem_note = _setup(cfg, conf_dir)
    plan = rules.Plan()
    median = [int(s) for s in fp["size"]["median"]]
    resample = rules.resampling_target(fp)
    if resample is not None:  # the patch is chosen for the median case as the network will see it
        target, why = resample
        median = [max(1, round(n * s / t)) for n, s, t in zip(median, fp["spacing"]["median"], target)]
        plan.add("data.spacing", target, f"{why}; the median image becomes {median}")
    size = _choose_size(sz, median)
    model = size.pop("model")
    plan.measurements = {"device": sz.device, "measured_on": sz.measure_on, "memory_budget_bytes": sz.mem,
                         "memory_budget": mem_note, "memory_limit_bytes": int(rules.MEMORY_MARGIN * sz.mem),
                         "step_model": model.__dict__, **size}
    _size_reasons(plan, sz, size, model, median, mem_note)
    pre, why = rules.normalisation(fp)
    data_steps = cast(list, OmegaConf.to_container(cfg.data.get("preprocess") or [], resolve=True))
    pre, kept = rules.with_structural_steps(data_steps, pre)
    if kept:
        why += f"; after the data config's {', '.join(kept)} (the fingerprint saw the data through them)"
    plan.add("data.preprocess", pre, why)
    freq = min(fp["class_frequency"].values())
    fg = rules.FG_OVERSAMPLE_RARE if freq < rules.RARE_FREQUENCY else rules.FG_OVERSAMPLE
    plan.add("data.foreground_fraction", fg,
             f"rarest class covers {100 * freq:.2f}% of pixels"
             + (f" (< {100 * rules.RARE_FREQUENCY:g}%: rare, half the patches on foreground)" if fg > rules.FG_OVERSAMPLE
                else " (nnU-Net's 1/3 of patches forced onto foreground)"))
    plan.add("loss", sz.loss, f"task {fp['task']}" + (", classes exclusive: soft Dice + focal (nnU-Net: Dice + CE)"
                                                      if fp["task"] == "multiclass" else
                                                      ", sigmoid per class: BCE + soft Dice (medseg's shipped "
                                                      "vessel/bone loss)"))
    overlap = 0.5 if sz.device == "cuda" else 0.25
    plan.add("inference.overlap", overlap, "sliding window, Gaussian blending; nnU-Net's 0.5 on GPU, 0.25 on CPU "
                                           "(4x fewer windows in 2D than 0.5)")
    _schedule(plan, sz, size, median, overlap, fg)
    plan.add("inference.sw_batch_size", max(size["batch"], 2) * 2,
             "twice the training batch (no gradients at inference)")
    return fp, plan


def _schedule(plan: rules.Plan, sz: _Sizing, size: dict, median: list[int], overlap: float, fg: float) -> None:
    """Samples per epoch and epochs from the measured step time (warm-up, median of 5) and an estimated
    validation time; a CUDA plan without the GPU has no step time: nnU-Net's 250 steps per epoch and
    ``trainer.max_time`` = the budget."""
    patch, batch = size["patch"], size["batch"]
    budget_min = sz.cfg.budget_min
    if sz.modelled:
        plan.add("data.samples_per_epoch", 250 * batch, f"250 steps of {batch} per epoch (nnU-Net); no GPU here "
                                                        "to measure a step time")
        plan.add("trainer.max_epochs", 1000, "nnU-Net's 1000 epochs; trainer.max_time stops the run at the budget")
        plan.add("trainer.max_time", runtime.max_time_string(float(budget_min) * 60), f"the budget, {budget_min} min")
        _averaging(plan, 250 * 1000, ema_decay(sz.conf_dir), nominal=True)
        return
    module = sz.module(patch)
    final = rules.measure_step(module, batch, patch, sz.in_ch, sz.measure_on, repeats=5, warmup=2)
    workers = runtime.resolve_num_workers(sz.cfg.data.get("num_workers", "auto"),
                                          "gpu" if sz.device == "cuda" else "cpu")
    load_s = _load_seconds(sz.dm, patch, batch, fg) if workers == 0 else 0.0
    plan.measurements["timed"] = {**final, "load_s": load_s, "num_workers": workers}
    n_val = len(sz.dm.cases.get("val", []))
    windows = int(np.prod([math.ceil(max(s - p, 0) / (p * (1 - overlap))) + 1 for s, p in zip(median, patch)]))
    val_s = n_val * windows * _fwd_seconds(module, batch, patch, sz.in_ch, sz.measure_on) / batch
    step_s = final["step_s"] + load_s
    total_steps = sz.train_s / step_s
    val_steps = math.ceil(val_s * (1 - rules.MAX_VAL_SHARE) / rules.MAX_VAL_SHARE / step_s)
    # at most what the budget holds after one validation: an epoch longer than the budget never validates
    fit = max(10, int((sz.train_s - val_s) / step_s))
    steps_per_epoch = int(min(250, fit, max(10, round(total_steps / 20), val_steps)))
    epochs = max(1, int(sz.train_s // (steps_per_epoch * step_s + val_s)))
    plan.add("data.samples_per_epoch", steps_per_epoch * batch,
             f"{steps_per_epoch} steps of {batch} per epoch (nnU-Net: 250; here ~1/20 of the budget's "
             f"{total_steps:.0f} steps, and enough that validation stays <= {rules.MAX_VAL_SHARE:.0%} of an epoch, "
             f"at most the {fit} steps the budget holds after one validation)")
    plan.add("trainer.max_epochs", epochs,
             f"{budget_min} min less {rules.OVERHEAD_SHARE:.0%} (loop, EMA, checkpoints, start-up) / ({steps_per_epoch} x "
             f"{step_s * 1000:.0f} ms (step {final['step_s'] * 1000:.0f} ms, median of 5 after 2 warm-up"
             + (f", + {load_s * 1000:.0f} ms to load its batch, no loader workers" if workers == 0 else
                f"; {workers} loader workers overlap loading")
             + f") + {val_s:.1f} s validation of {n_val} cases x {windows} windows)")
    _averaging(plan, epochs * steps_per_epoch, ema_decay(sz.conf_dir))


#: fewest planned optimiser steps for the weight EMA, in horizons 1 / (1 - decay) of its decay
EMA_MIN_HORIZONS = 10


def ema_decay(conf_dir: str | Path) -> float:
    """The decay ``callbacks=ema`` ships with (``<conf_dir>/callbacks/ema.yaml``)."""
    return float(OmegaConf.load(Path(conf_dir) / "callbacks" / "ema.yaml").ema.decay)


def ema_min_steps(decay: float) -> int:
    """Fewest planned optimiser steps for the weight EMA: :data:`EMA_MIN_HORIZONS` horizons of ``decay``."""
    return math.ceil(EMA_MIN_HORIZONS / (1 - decay) - 1e-9)


def _averaging(plan: rules.Plan, total_steps: float, decay: float, nominal: bool = False) -> None:
    """``callbacks=ema`` when the run is long enough for the average to settle. ``nominal``: the step
    count is a CUDA plan's nominal schedule (no GPU here to time a step), which ``max_time`` may cut."""
    need = ema_min_steps(decay)
    steps = f"{total_steps:.0f} {'nominal ' if nominal else ''}planned steps"
    horizon = f"decay {decay:g}, a ~{1 / (1 - decay):.0f}-step horizon"
    if total_steps >= need:
        plan.add("callbacks", "ema", f"weight EMA ({horizon}) over {steps}: +0.0033 Dice on the real DRIVE "
                                     "4-fold CV (results.md section 9)")
        plan.add("callbacks.model_checkpoint.monitor", None,
                 "keep the final average, not the best epoch on validation (nnU-Net's checkpoint_final): "
                 "+0.0017 Dice with the EMA on the real DRIVE 4-fold CV (results.md section 9)")
    else:
        plan.add("callbacks", "default", f"no weight EMA: {steps} are fewer than {need} "
                                         f"({EMA_MIN_HORIZONS} horizons of {horizon}), the average would lag")


def _flow(v) -> str:
    return json.dumps(v).replace('"', "") if isinstance(v, list) and not any(isinstance(x, dict) for x in v) else str(v)


def experiment_yaml(cfg: DictConfig, fp: dict, plan: rules.Plan, data_choice: str) -> str:
    """The experiment, one comment per choice."""
    c = {ch.key: ch for ch in plan.choices}
    model = "unet3d" if fp["spatial_dims"] == 3 else "unet"

    def line(indent: int, key: str, value, reason: str) -> str:
        return f"{' ' * indent}{key}: {_flow(value)}  # {reason}"

    pre = c["data.preprocess"]
    out = ["# @package _global_",
           f"# Planned by medseg-plan on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC for {fp['root']}",
           f"# ({fp['cases']} training cases, {fp['task']} {fp['classes']}, {fp['spatial_dims']}D, {fp['modality']}),",
           f"# device {cfg.device}, budget {cfg.budget_min} min. Rules and their sources: docs/plan.md.",
           f"#   medseg-train experiment={cfg.name}        medseg-kfold experiment={cfg.name}",
           "defaults:",
           f"  - override /data: {data_choice}",
           f"  - override /model: {model}   # {fp['spatial_dims']}D images",
           f"  - override /loss: {c['loss'].value}   # {c['loss'].reason}",
           f"  - override /trainer: {'gpu' if cfg.device == 'cuda' else 'cpu'}",
           *([f"  - override /callbacks: {c['callbacks'].value}   # {c['callbacks'].reason}"] if "callbacks" in c else []),
           "",
           f"task_name: {cfg.name}",
           "data:",
           line(2, "root", fp["root"], "the fingerprinted dataset"),
           line(2, "patch_size", c["data.patch_size"].value, c["data.patch_size"].reason),
           line(2, "batch_size", c["data.batch_size"].value, c["data.batch_size"].reason),
           line(2, "samples_per_epoch", c["data.samples_per_epoch"].value, c["data.samples_per_epoch"].reason),
           line(2, "foreground_fraction", c["data.foreground_fraction"].value, c["data.foreground_fraction"].reason),
           *([line(2, "spacing", c["data.spacing"].value, c["data.spacing"].reason)] if "data.spacing" in c else []),
           f"  # {pre.reason}",
           "  preprocess:"]
    for t in pre.value:
        out.append("    - {" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in t.items()) + "}")
    out += ["model:", line(2, "depth", c["model.depth"].value, c["model.depth"].reason)]
    if model == "unet3d":
        out.append(line(2, "dropout", 0.0, "one value for any depth (nnU-Net uses no dropout)"))
    out += ["trainer:", line(2, "max_epochs", c["trainer.max_epochs"].value, c["trainer.max_epochs"].reason)]
    if "trainer.max_time" in c:
        out.append(line(2, "max_time", f'"{c["trainer.max_time"].value}"', c["trainer.max_time"].reason))
    if "callbacks.model_checkpoint.monitor" in c:
        keep = c["callbacks.model_checkpoint.monitor"]
        out += ["callbacks:", "  model_checkpoint:", line(4, "monitor", "null", keep.reason),
                line(4, "filename", '"final-epoch{epoch:03d}"', "the kept checkpoint: what ckpt=best loads")]
    out += [
            "inference:", line(2, "overlap", c["inference.overlap"].value, c["inference.overlap"].reason),
            line(2, "sw_batch_size", c["inference.sw_batch_size"].value, c["inference.sw_batch_size"].reason)]
    return "\n".join(out) + "\n"


def run_command(out: Path, conf_dir: str | Path) -> str:
    """The ``medseg-train`` command that runs the experiment written at ``out``. Hydra finds an
    experiment only as ``<config dir>/experiment/<name>.yaml``: elsewhere, the command says where to copy it."""
    out = Path(out).resolve()
    if out.parent == (Path(conf_dir) / "experiment").resolve():
        return f"medseg-train experiment={out.stem}"
    if out.parent.name == "experiment":
        return f"medseg-train --config-dir {out.parent.parent} experiment={out.stem}"
    return (f"mkdir -p conf/experiment && cp {out} conf/experiment/ && medseg-train --config-dir conf "
            f"experiment={out.stem}   (Hydra reads experiments from a config folder's experiment/)")


def run_plan(cfg: DictConfig, run_dir: str | Path, data_choice: str,
             conf_dir: str | Path) -> tuple[dict, rules.Plan, Path]:
    """Plan, write ``fingerprint.json`` + ``plan.json`` in ``run_dir`` and the experiment YAML (default
    ``<conf_dir>/experiment/<name>.yaml``)."""
    run_dir = Path(run_dir)
    fp, plan = make_plan(cfg, conf_dir)
    for line in summary_lines(fp):
        log.info(line)
    write_json_atomic(run_dir / "fingerprint.json", fp)
    write_json_atomic(run_dir / "plan.json", {"choices": [c.__dict__ for c in plan.choices],
                                              "measurements": plan.measurements})
    out = Path(cfg.out).expanduser() if cfg.get("out") else Path(conf_dir) / "experiment" / f"{cfg.name}.yaml"
    text = experiment_yaml(cfg, fp, plan, data_choice)
    write_text_atomic(out, text)
    return fp, plan, out
