"""End-to-end: ``medseg-plan`` on a small images/masks folder writes a commented experiment that
``medseg-train`` runs as is; an empty folder fails naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli


def _folder(root, n=8, size=48):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx = rng.integers(14, size - 14, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= 8 ** 2
        img = np.clip(60 + 120 * disk + rng.normal(0, 25, disk.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"c{i}.png")
        Image.fromarray((disk * 255).astype(np.uint8)).save(root / "masks" / f"c{i}.png")
    return root


@pytest.mark.slow  # ~25 s of CPU (plan with measurements + a smoke training run): make test-slow
def test_plan_writes_a_runnable_commented_experiment(tmp_path):
    data = _folder(tmp_path / "blobs")
    out = tmp_path / "conf" / "experiment" / "blobs_planned.yaml"
    proc = run_cli("medseg.cli.plan", ["data=folder", f"data.root={data}", "budget_min=0.5", "name=blobs_planned",
                                       f"out={out}", f"hydra.run.dir={tmp_path / 'plan'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fp = json.loads((tmp_path / "plan" / "fingerprint.json").read_text())
    assert fp["task"] == "binary" and fp["channels"] == 1 and fp["size"]["median"] == [48, 48]
    assert fp["objects"][0]["shape"].startswith("compact")
    assert "grey radiograph" in proc.stdout
    text = out.read_text()
    for key in ("patch_size:", "batch_size:", "samples_per_epoch:", "foreground_fraction:", "depth:", "max_epochs:",
                "overlap:"):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(key))
        assert "  # " in line, line  # every choice carries its reason
    assert "MiB" in text and "ms/step" in text  # patch and batch come from measurements
    # the weight EMA only where the planned steps let the average settle
    import yaml

    from medseg.cli._hydra import config_dir
    from medseg.pipelines.plan import ema_decay, ema_min_steps

    min_steps = ema_min_steps(ema_decay(config_dir()))
    plan = yaml.safe_load(text)
    steps = plan["trainer"]["max_epochs"] * plan["data"]["samples_per_epoch"] // plan["data"]["batch_size"]
    averaging = next(ln for ln in text.splitlines() if "override /callbacks:" in ln)
    assert averaging.split(":")[1].split()[0] == ("ema" if steps >= min_steps else "default") and "  # " in averaging
    # with the average the run keeps its final weights; without it, the best epoch on validation
    kept = (plan.get("callbacks") or {}).get("model_checkpoint", {}).get("monitor", "the default, ${monitor}")
    assert kept == (None if steps >= min_steps else "the default, ${monitor}")

    run = tmp_path / "run"
    proc = run_cli("medseg.cli.train", ["--config-dir", str(tmp_path / "conf"), "experiment=blobs_planned",
                                        "debug=smoke", f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "results.json").is_file()


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_plan_on_an_empty_folder_names_it(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli("medseg.cli.plan", ["data=folder", f"data.root={tmp_path / 'empty'}",
                                       f"out={tmp_path / 'x.yaml'}", f"hydra.run.dir={tmp_path / 'plan'}"], tmp_path)
    assert proc.returncode == 3
    assert str(tmp_path / "empty") in proc.stderr and "empty folder" in proc.stderr
    assert "Traceback" not in proc.stderr
