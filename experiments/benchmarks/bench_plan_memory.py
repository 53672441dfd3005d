"""Do ``medseg-plan``'s patch/batch choices fit in memory? (issue 15, "Must show")

For the 2048x2048 hand-bone and the 240x240x155 BraTS synthetic data (few cases, full size), plan with
``device=cpu`` (this machine: half of the memory available) and with ``device=cuda memory_gb=24`` and
``80`` (no GPU here: the CUDA plans are sized by :class:`medseg.plan.rules.StepModel`, fitted to CPU
steps). Then, each in a fresh process (a clean resident-set baseline), measure on the CPU:

* the peak of one training step (forward + backward + Adam) at the planned patch and batch, and
* the peak of sliding-window inference (the planned roi, overlap and ``sw_batch_size``, Gaussian
  blending, output accumulated on the host) over one full-size case,

and compare them with the budget the plan was given. For the CUDA plans the CPU measurement checks
the model's estimate (same activations; cuDNN workspace and allocator rounding are not in it).
Memory, not time, is measured, so a shared machine does not bias the figures much (the step times
in the plan do vary with load).

    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_plan_memory.py            # full sizes
    OMP_NUM_THREADS=1 python experiments/benchmarks/bench_plan_memory.py --quick    # small, a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

#: hand-bone IDs hold two hands each and are split by ID: 4 IDs are the fewest a train/val/test split takes
FULL = {"handbone": {"size": 2048, "n_train": 4, "n_test": 1}, "brats": {"shape": [240, 240, 155], "n_cases": 4}}
QUICK = {"handbone": {"size": 512, "n_train": 4, "n_test": 1}, "brats": {"shape": [96, 96, 64], "n_cases": 4}}
#: a planned step is measured on this CPU at a batch whose modelled peak is below this share of the memory
#: available now (the plan's batch when it is small enough; the figure is then scaled back linearly)
CPU_CHECK_SHARE = 0.5


def _env() -> dict:
    return dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _generate(work: Path, sizes: dict, only: str | None = None) -> dict[str, list[str]]:
    from medseg.data.synth.brats import write_brats
    from medseg.data.synth.handbone import write_handbone

    hb, br = work / "handbone", work / "BraTS2020"
    if not hb.is_dir() and only != "brats":
        write_handbone(hb, seed=2020, **sizes["handbone"])
    if not br.is_dir() and only != "handbone":
        write_brats(br, seed=2020, **sizes["brats"])
    return {"handbone 2048x2048" if sizes is FULL else "handbone (quick)":
            ["data=handbone_synth", f"data.root={hb}"],
            "BraTS 240x240x155" if sizes is FULL else "BraTS (quick)":
            ["data=brats_synth", f"data.root={br}", f"data.cache_dir={work / 'cache' / 'brats'}"]}


def _plan(data: list[str], device: list[str], out: Path) -> dict:
    if (out / "plan.json").is_file():  # planned by an earlier (interrupted) run with the same --work
        return json.loads((out / "plan.json").read_text())
    cmd = [sys.executable, "-m", "medseg.cli.plan", *data, *device, "budget_min=25", "name=bench_mem",
           f"out={out / 'plan.yaml'}", f"hydra.run.dir={out}"]
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, cwd=out.parent, env=dict(_env(), MEDSEG_ROOT=str(out.parent)),
                          capture_output=True, text=True)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads((out / "plan.json").read_text())


def _choice(plan: dict, key: str):
    return next(c["value"] for c in plan["choices"] if c["key"] == key)


def _measure_child(spec: dict) -> dict:
    """In this (fresh) process: the training step and sliding-window peaks of ``spec`` on the CPU."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from monai.inferers import sliding_window_inference
    from omegaconf import open_dict

    from medseg.cli._hydra import config_dir
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.plan import _module
    from medseg.plan import rules

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("plan", overrides=[*spec["data"], f"data.patch_size={[1] * len(spec['patch'])}"],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    dm = build_datamodule(cfg)
    patch, batch = spec["patch"], spec["batch"]
    module = _module(cfg, dm, spec["model"], spec["loss"], rules.depth_for(patch), config_dir())
    step = rules.measure_step(module, batch, patch, int(dm.in_channels), "cpu", repeats=1)
    module.eval()
    image = torch.randn(1, int(dm.in_channels), *spec["full_shape"])
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rules._rss_bytes())
            time.sleep(0.001)

    if rules._LIBC is not None:
        rules._LIBC.malloc_trim(0)
    base = rules._rss_bytes()
    hwm = rules.reset_peak_rss()
    th = threading.Thread(target=sample, daemon=True)
    if not hwm:
        th.start()
    with torch.no_grad():
        logits = sliding_window_inference(image, patch, spec["sw_batch_size"], module.net, overlap=spec["overlap"],
                                          mode="gaussian")
        module.task.discretize(module.task.activation(logits))
    stop.set()
    if hwm:
        infer = rules.peak_rss_bytes() - base + image.numel() * 4  # the input counts too
    else:
        th.join()
        infer = max(peak[0], rules._rss_bytes()) - base + image.numel() * 4
    return {"step_total_bytes": step["total_bytes"], "step_s": step["step_s"], "infer_peak_bytes": int(infer)}


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


def _row(name: str, data: list[str], dev: list[str], plan: dict) -> dict:
    mb = 2**20
    m = plan["measurements"]
    patch, batch = _choice(plan, "data.patch_size"), _choice(plan, "data.batch_size")
    row = {"dataset": name, "plan": " ".join(dev), "patch": patch, "batch": batch,
           "budget_mib": m["memory_budget_bytes"] / mb, "limit_mib": m["memory_limit_bytes"] / mb,
           "planned_step_mib": m["chosen"]["total_bytes"] / mb, "planned_by": m["chosen"]["measured_on"]}
    fp = json.loads((Path(plan["_dir"]) / "fingerprint.json").read_text())
    full_shape = [int(s) for s in fp["size"]["max"]]
    dims = fp["spatial_dims"]
    spec = {"data": data, "patch": patch, "batch": batch, "full_shape": full_shape,
            "model": "unet3d" if dims == 3 else "unet", "loss": "dice_focal" if fp["task"] == "multiclass" else "bce_dice",
            "sw_batch_size": _choice(plan, "inference.sw_batch_size"), "overlap": _choice(plan, "inference.overlap")}
    # a step too large to measure on this shared CPU is checked at a smaller batch (the model is linear in it)
    per_sample = m["step_model"]["bytes_per_voxel"] * float(np.prod(patch))
    check_batch = batch
    while check_batch > 1 and m["chosen"]["total_bytes"] - per_sample * (batch - check_batch) \
            > CPU_CHECK_SHARE * _mem_available():
        check_batch -= 1
    expected = m["chosen"]["total_bytes"] - per_sample * (batch - check_batch)
    spec["batch"] = check_batch
    row["checked_at_batch"] = check_batch
    proc = subprocess.run([sys.executable, __file__, "--measure", json.dumps(spec)], env=_env(),
                          capture_output=True, text=True)
    if proc.returncode:
        row["note"] = "measurement failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        return row
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(measured_step_mib=got["step_total_bytes"] / mb, infer_peak_mib=got["infer_peak_bytes"] / mb,
               full_case=full_shape, infer_fits=got["infer_peak_bytes"] <= m["memory_budget_bytes"],
               step_fits=got["step_total_bytes"] + per_sample * (batch - check_batch) <= m["memory_budget_bytes"],
               model_error=(expected - got["step_total_bytes"]) / max(got["step_total_bytes"], 1))
    return row


def _table(rows: list[dict]) -> str:
    out = ["| dataset | plan | patch x batch | budget (MiB) | planned step (MiB, by) | step measured on CPU (MiB) "
           "| sliding window, one full case (MiB) | fits |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['dataset']} | {r['plan']} | refused: {r['error']} | | | | | |")
            continue
        at = f" at batch {r['checked_at_batch']}" if r.get("checked_at_batch", r["batch"]) != r["batch"] else ""
        meas = f"{r['measured_step_mib']:.0f}{at} (plan {100 * r['model_error']:+.0f}%)" if "measured_step_mib" in r \
            else r.get("note", "")
        inf = f"{r['infer_peak_mib']:.0f} ({'x'.join(map(str, r['full_case']))})" if "infer_peak_mib" in r else ""
        fits = ("yes" if r["step_fits"] and r["infer_fits"] else "NO") if "step_fits" in r else "n/a"
        out.append(f"| {r['dataset']} | {r['plan']} | {r['patch']} x {r['batch']} | {r['budget_mib']:.0f} | "
                   f"{r['planned_step_mib']:.0f} ({r['planned_by']}) | {meas} | {inf} | {fits} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small images/volumes, the cpu and cuda24 plans only")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--only", choices=["handbone", "brats"], default=None, help="one dataset")
    ap.add_argument("--devices", default="cpu,cuda24,cuda80", help="plans to make: cpu, cudaG (G GiB GPU)")
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # child mode
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(_measure_child(json.loads(a.measure))))
        return
    work = (a.work or Path(tempfile.mkdtemp(prefix="bench_plan_memory_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    datasets = _generate(work, QUICK if a.quick else FULL, a.only)
    wanted = a.devices.split(",") if not a.quick else ["cpu", "cuda24"]
    devices = [["device=cpu"] if d == "cpu" else ["device=cuda", f"memory_gb={d[4:]}"] for d in wanted]
    rows = []
    for name, data in datasets.items():
        if a.only and not name.lower().startswith(a.only):
            continue
        for dev in devices:
            out = work / "plans" / f"{name.split()[0]}_{'_'.join(d.split('=')[1] for d in dev)}"
            t0 = time.perf_counter()
            plan = _plan(data, dev, out)
            if "error" in plan:
                rows.append({"dataset": name, "plan": " ".join(dev), **plan})
                print(json.dumps(rows[-1]), flush=True)
                continue
            plan["_dir"] = str(out)
            row = _row(name, data, dev, plan)
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = work / f"bench_plan_memory{'_' + a.only if a.only else ''}_{'_'.join(wanted)}.json"
    result.write_text(json.dumps(rows, indent=2))
    print("\n" + _table(rows))
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end (the CPU plans' step times, "
          f"so their sizes, depend on it; memory figures are RSS peaks); full result: {result}")


if __name__ == "__main__":
    main()
