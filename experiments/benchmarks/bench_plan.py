"""Planned vs shipped experiment at the same CPU budget (issue 15, a short-budget version).

For one dataset: ``medseg-plan`` writes an experiment fitted to ``--budget-min`` (from measured step
times), then the planned experiment and the shipped ``experiment=drive_unet`` each train with
``trainer.max_time`` = the budget (same seed, same data config, so the same held-out test images),
and their test Dice per image is compared with a paired bootstrap. The machine is shared: the
budgets are wall-clock minutes on a loaded machine, so figures are indicative, not quiet-machine.

    python experiments/benchmarks/bench_plan.py --budget-min 3                 # synthetic DRIVE
    python experiments/benchmarks/bench_plan.py --budget-min 3 --real          # ../shared/data/DRIVE
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED_DRIVE = REPO.parent / "shared" / "data" / "DRIVE"
sys.path.insert(0, str(REPO))


def _run(module: str, args: list[str], cwd: Path) -> float:
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", MEDSEG_ROOT=str(cwd),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _dhms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-min", type=float, default=3.0)
    ap.add_argument("--real", action="store_true", help="real DRIVE training split in ../shared")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    from medseg.report.stats import paired_comparison

    work = a.work or Path(tempfile.mkdtemp(prefix="bench_plan_"))
    work.mkdir(parents=True, exist_ok=True)
    if a.real:
        if not (SHARED_DRIVE / "training").is_dir():
            print(f"skipped: {SHARED_DRIVE} not found")
            return
        data = ["data=drive", f"data.root={SHARED_DRIVE}"]
    else:
        data = ["data=drive_synth"]
    budget = a.budget_min * 60
    conf = work / "conf"
    t_plan = _run("medseg.cli.plan", [*data, f"budget_min={a.budget_min}", "name=bench_planned",
                                      f"out={conf / 'experiment' / 'bench_planned.yaml'}",
                                      f"hydra.run.dir={work / 'plan'}"], work)
    runs = {"planned": ["--config-dir", str(conf), "experiment=bench_planned"], "shipped": ["experiment=drive_unet"]}
    wall, per_image = {}, {}
    for name, args in runs.items():
        rd = work / name
        wall[name] = _run("medseg.cli.train", [*args, *data, f"+trainer.max_time={_dhms(budget)}",
                                               f"hydra.run.dir={rd}"], work)
        per_image[name] = pd.read_csv(rd / "per_image.csv", index_col=0)["dice"]
    cmp = paired_comparison(per_image["shipped"], per_image["planned"], "shipped drive_unet", "planned")
    result = {"dataset": "real DRIVE (training split, 25% held out)" if a.real else "synthetic DRIVE",
              "budget_min": a.budget_min, "plan_s": round(t_plan, 1),
              "wall_s": {k: round(v, 1) for k, v in wall.items()},
              "test_dice": {k: round(float(v.mean()), 4) for k, v in per_image.items()},
              "n_test": int(len(per_image["planned"])),
              "planned_minus_shipped": [round(cmp.diff.mean, 4), round(cmp.diff.low, 4), round(cmp.diff.high, 4)],
              "sentence": cmp.sentence(), "experiment": (conf / "experiment" / "bench_planned.yaml").read_text(),
              "note": "shared 2-core machine with other jobs running: wall-clock budgets, indicative only"}
    out = work / "bench_plan.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "experiment"}, indent=2))
    print(f"\nfull result: {out}")


if __name__ == "__main__":
    main()
