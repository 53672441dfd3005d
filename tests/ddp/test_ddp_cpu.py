"""Two CPU processes (gloo) against one process with the same global batch: metrics are reduced across
ranks, every validation image is scored exactly once, only rank 0 evaluates and writes, and the test
Dice matches.

The setup makes the two runs mathematically equal: patches depend only on their index, no augmentation,
one step per epoch (the same 8 patches
form the global batch whatever the shuffling), instance norm (no batch statistics), BCE and a per-image Dice loss (means over images: the average of
two half-batch means is the full-batch mean), so any difference beyond float rounding is a DDP bug.

Not compared: ``val/loss``. Lightning 2.6 reduces ``self.log(..., sync_dist=True)`` epoch means with an
integer batch count divided by the world size, so with uneven shards (3 images on 2 ranks) the logged
value is off (see docs/sweeps.md); ``val/dice`` comes from a torchmetrics state and is exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def run_train(tiny_drive: Path, run_dir: Path, extra: list[str]) -> subprocess.CompletedProcess:
    run_dir.mkdir(parents=True)
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1", MEDSEG_ROOT=str(run_dir),
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]))
    args = ["debug=smoke", "data=drive", f"data.root={tiny_drive}", "data.val_fraction=0.5",  # 3 val images
            "data.augment=null", "data.samples_per_epoch=8", "model.norm=instance", "model.base_channels=4",
            "loss.terms.dice.loss.batch=false", "optimizer.lr=0.01", "threshold=0.3",  # Dice > 0 in 2 epochs
            "trainer.max_epochs=2", "data.baseline=null",
            f"hydra.run.dir={run_dir}", "+callbacks.valcount._target_=valcount.ValCount",
            f"+callbacks.valcount.out={run_dir}", *extra]
    proc = subprocess.run([sys.executable, "-m", "medseg.cli.train", *args], cwd=run_dir, env=env,
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(tiny_drive, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_train(tiny_drive, one, ["data.batch_size=8"])
    run_train(tiny_drive, two, ["trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=4"])

    n_val = len(json.loads((one / "splits.json").read_text())["val"])
    assert n_val == 3  # odd: a padding sampler would repeat one image
    counts = [json.loads((two / f"valcount_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(c["world"] == 2 for c in counts)
    assert sorted(c["local"] for c in counts) == [1, 2]  # each rank scores its own share ...
    assert all(c["total"] == n_val for c in counts)      # ... and together every image exactly once

    # the logged validation Dice is the all-rank value: equal to the single-process one every epoch
    m1, m2 = (pd.read_csv(d / "metrics.csv") for d in (one, two))
    assert list(m2["epoch"]) == [0, 1]
    assert m2["val/dice"].tolist() == pytest.approx(m1["val/dice"].tolist(), abs=1e-4)
    assert m2["train/loss"].tolist() == pytest.approx(m1["train/loss"].tolist(), rel=1e-4)

    assert m1["val/dice"].min() > 0.1  # an informative Dice, not a constant 0

    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert r1["test/dice"] > 0.1
    assert r2["test/dice"] == pytest.approx(r1["test/dice"], abs=1e-4)

    # rank 0 alone evaluated, wrote the report and the checkpoints; rank 1 only logged its own lines
    assert (two / "report.md").is_file() and len(list((two / "checkpoints").glob("*.ckpt"))) == 2
    rank1_log = (two / "train_ddp_process_1.log").read_text()
    rank0_log = (two / "train.log").read_text()
    assert "evaluating best checkpoint" in rank0_log and "evaluating best checkpoint" not in rank1_log
