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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from medseg.errors import ConfigError
from medseg.pipelines.build import build_datamodule, build_module
from medseg.plan import rules
from medseg.plan.fingerprint import fingerprint, summary_lines
from medseg.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def _module(cfg: DictConfig, dm, model: str, loss: str, depth: int, conf_dir: str | Path):
    c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(c):
        c.model = OmegaConf.load(Path(conf_dir) / "model" / f"{model}.yaml")
        c.model.depth = depth
        if model == "unet3d":
            c.model.dropout = 0.0
        c.loss = OmegaConf.load(Path(conf_dir) / "loss" / f"{loss}.yaml")
        c.module = {}
    return build_module(c, dm)


def _fwd_seconds(module, batch: int, patch: list[int], in_ch: int, device: str) -> float:
    module = module.to(device).eval()
    x = torch.randn(batch, in_ch, *patch, device=device)
    with torch.no_grad():
        module.net(x)
        t0 = datetime.now()
        module.net(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return (datetime.now() - t0).total_seconds()


def make_plan(cfg: DictConfig, conf_dir: str | Path) -> tuple[dict, rules.Plan]:
    """Fingerprint ``cfg.data`` and plan an experiment for ``cfg.device`` and ``cfg.budget_min``
    (model and loss configs are read from ``conf_dir``)."""
    device = str(cfg.device)
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device={device}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda: no CUDA device here; plan with device=cpu (memory_gb=<GPU GiB> "
                          "states a GPU's memory for the batch/patch rule)")
    budget_s = float(cfg.budget_min) * 60
    if budget_s <= 0:
        raise ConfigError(f"budget_min={cfg.budget_min}: must be positive (minutes of training)")
    if cfg.data.get("patch_size") is not None:
        # the plan chooses the patch size itself: the data config's default must not be checked against
        # (or refused for) images smaller than it
        with open_dict(cfg):
            cfg.data.patch_size = [1] * len(cfg.data.patch_size)
    dm = build_datamodule(cfg)
    fp = fingerprint(dm)
    plan = rules.Plan()
    dims, task = fp["spatial_dims"], fp["task"]
    in_ch = int(dm.in_channels)  # after the data config's preprocessing (the measurement's input)
    mem, mem_note = rules.device_memory_bytes(device, cfg.get("memory_gb"))
    median = [int(s) for s in fp["size"]["median"]]
    model = "unet3d" if dims == 3 else "unet"
    loss = "dice_focal" if task == "multiclass" else "bce_dice"
    freq = min(fp["class_frequency"].values())

    # patch: from the median image, shrunk until a batch of 2 fits in memory and the budget holds enough steps
    cap = 128 if dims == 3 else 512
    patch = [rules.round_down(min(s, cap), 16) for s in median]
    tried = []
    # a small probe first: candidates whose extrapolated peak (bytes per voxel x voxels) would not fit
    # are skipped unmeasured, so measuring never allocates far beyond the budget on a shared machine
    probe_patch = [min(p, 32 if dims == 3 else 64) for p in patch]
    probe = rules.measure_step(_module(cfg, dm, model, loss, rules.depth_for(probe_patch), conf_dir), 2,
                               probe_patch, in_ch, device)
    per_voxel = probe["peak_bytes"] / float(np.prod(probe_patch))
    skipped = []
    for _ in range(12):
        if per_voxel * float(np.prod(patch)) > 1.5 * mem and min(patch) > 32:
            skipped.append(list(patch))
            patch = [rules.round_down(s * 0.75, 16) if s > 32 else s for s in patch]
            continue
        depth = rules.depth_for(patch)
        module = _module(cfg, dm, model, loss, depth, conf_dir)
        m2 = rules.measure_step(module, 2, patch, in_ch, device)
        tried.append(m2)
        steps = budget_s * rules.TRAIN_SHARE / max(m2["step_s"], 1e-6)
        if m2["peak_bytes"] <= mem and (device == "cuda" or steps >= rules.MIN_STEPS or min(patch) <= 32):
            break
        patch = [rules.round_down(s * 0.75, 16) if s > 32 else s for s in patch]
    else:  # no candidate fitted: the smallest one, measured
        module = _module(cfg, dm, model, loss, rules.depth_for(patch), conf_dir)
        m2 = rules.measure_step(module, 2, patch, in_ch, device)
        tried.append(m2)
    depth = rules.depth_for(patch)
    m1 = rules.measure_step(module, 1, patch, in_ch, device)
    per_sample = max(m2["peak_bytes"] - m1["peak_bytes"], m2["peak_bytes"] // 2, 1)
    per_step_sample = max(m2["step_s"] / 2, 1e-6)
    fit_mem = int(mem // per_sample)
    fit_time = int(budget_s * rules.TRAIN_SHARE / rules.MIN_STEPS / per_step_sample)
    batch_cap = 2 if dims == 3 else 16
    batch = max(1, min(fit_mem, batch_cap if device == "cuda" else min(batch_cap, max(2, fit_time))))
    final = rules.measure_step(module, batch, patch, in_ch, device)
    plan.measurements = {"device": device, "memory_budget_bytes": mem, "memory_budget": mem_note,
                         "probe": probe, "skipped_unmeasured": skipped, "candidates": tried, "batch_1": m1, "chosen": final, "per_sample_bytes": per_sample}

    pmsg = (f"median image {median}; first patch that fits: batch 2 measured at "
            f"{m2['peak_bytes'] / 2**20:.0f} MiB peak, {m2['step_s'] * 1000:.0f} ms/step on {device} "
            f"(memory budget {mem / 2**30:.1f} GiB: {mem_note}"
            + (f"; >= {rules.MIN_STEPS} steps in {cfg.budget_min} min" if device == "cpu" else "")
            + f"; tried {[t['patch'] for t in tried]}"
            + (f"; skipped by extrapolation from a {probe_patch} probe: {skipped}" if skipped else "") + ")")
    plan.add("data.patch_size", patch, pmsg)
    plan.add("model.depth", depth, f"smallest patch side {min(patch)} px: {depth} poolings leave a "
                                   f"{min(patch) // 2 ** depth} px bottleneck (target >= {rules.MIN_BOTTLENECK} px, "
                                   "at least 2 poolings; nnU-Net pools down to 4-8)")
    plan.add("data.batch_size", batch,
             f"{per_sample / 2**20:.0f} MiB per extra sample (measured batch 1 vs 2): memory fits {fit_mem}; "
             f"cap {batch_cap if device == 'cuda' else f'{batch_cap} and {fit_time} (steps in the budget)'}; "
             f"measured at {batch}: {final['peak_bytes'] / 2**20:.0f} MiB, {final['step_s'] * 1000:.0f} ms/step")
    pre, why = rules.normalisation(fp)
    plan.add("data.preprocess", pre, why)
    fg = rules.FG_OVERSAMPLE_RARE if freq < rules.RARE_FREQUENCY else rules.FG_OVERSAMPLE
    plan.add("data.foreground_fraction", fg,
             f"rarest class covers {100 * freq:.2f}% of pixels"
             + (f" (< {100 * rules.RARE_FREQUENCY:g}%: rare, half the patches on foreground)" if fg > rules.FG_OVERSAMPLE
                else " (nnU-Net's 1/3 of patches forced onto foreground)"))
    plan.add("loss", loss, f"task {task}" + (", classes exclusive: soft Dice + focal (nnU-Net: Dice + CE)"
                                             if task == "multiclass" else
                                             ", sigmoid per class: BCE + soft Dice (medseg's shipped vessel/bone loss)"))
    overlap = 0.5 if device == "cuda" else 0.25
    plan.add("inference.overlap", overlap, "sliding window, Gaussian blending; nnU-Net's 0.5 on GPU, 0.25 on CPU "
                                           "(4x fewer windows in 2D than 0.5)")
    n_val = len(dm.cases.get("val", []))
    windows = int(np.prod([math.ceil(max(s - p, 0) / (p * (1 - overlap))) + 1 for s, p in zip(median, patch)]))
    fwd = _fwd_seconds(module, batch, patch, in_ch, device)
    val_s = n_val * windows * fwd / batch
    train_s = budget_s * rules.TRAIN_SHARE
    total_steps = train_s / final["step_s"]
    val_steps = math.ceil(val_s * (1 - rules.MAX_VAL_SHARE) / rules.MAX_VAL_SHARE / final["step_s"])
    steps_per_epoch = int(min(250, max(10, round(total_steps / 20), val_steps)))
    epochs = max(1, int(train_s // (steps_per_epoch * final["step_s"] + val_s)))
    plan.add("data.samples_per_epoch", steps_per_epoch * batch,
             f"{steps_per_epoch} steps of {batch} per epoch (nnU-Net: 250; here ~1/20 of the budget's "
             f"{total_steps:.0f} steps, and enough that validation stays <= {rules.MAX_VAL_SHARE:.0%} of an epoch)")
    plan.add("trainer.max_epochs", epochs,
             f"{cfg.budget_min} min x {rules.TRAIN_SHARE:g} for training / ({steps_per_epoch} x "
             f"{final['step_s'] * 1000:.0f} ms + {val_s:.1f} s validation of {n_val} cases x {windows} windows)")
    plan.add("inference.sw_batch_size", max(batch, 2) * 2, "twice the training batch (no gradients at inference)")
    if dims == 3 and fp.get("anisotropy", 1) > 3:
        sp = fp["spacing"]
        target = [float(min(m, p)) if m == max(sp["median"]) else float(m) for m, p in zip(sp["median"], sp["p10"])]
        plan.add("resampling (not applied)", target,
                 f"anisotropy {fp['anisotropy']:.1f} > 3: nnU-Net resamples to the median spacing with the coarse "
                 "axis at its 10th percentile; medseg has no resampling transform yet, so this is advice only")
    return fp, plan


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
           "",
           f"task_name: {cfg.name}",
           "data:",
           line(2, "root", fp["root"], "the fingerprinted dataset"),
           line(2, "patch_size", c["data.patch_size"].value, c["data.patch_size"].reason),
           line(2, "batch_size", c["data.batch_size"].value, c["data.batch_size"].reason),
           line(2, "samples_per_epoch", c["data.samples_per_epoch"].value, c["data.samples_per_epoch"].reason),
           line(2, "foreground_fraction", c["data.foreground_fraction"].value, c["data.foreground_fraction"].reason),
           f"  # {pre.reason}",
           "  preprocess:"]
    for t in pre.value:
        out.append("    - {" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in t.items()) + "}")
    out += ["model:", line(2, "depth", c["model.depth"].value, c["model.depth"].reason)]
    if model == "unet3d":
        out.append(line(2, "dropout", 0.0, "one value for any depth (nnU-Net uses no dropout)"))
    out += ["trainer:", line(2, "max_epochs", c["trainer.max_epochs"].value, c["trainer.max_epochs"].reason),
            "inference:", line(2, "overlap", c["inference.overlap"].value, c["inference.overlap"].reason),
            line(2, "sw_batch_size", c["inference.sw_batch_size"].value, c["inference.sw_batch_size"].reason)]
    if "resampling (not applied)" in c:
        r = c["resampling (not applied)"]
        out.append(f"# resampling target spacing {r.value}: {r.reason}")
    return "\n".join(out) + "\n"


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
