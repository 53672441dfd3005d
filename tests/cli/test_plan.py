"""End-to-end: ``medseg-plan`` on a small images/masks folder writes a commented experiment that
``medseg-train`` runs as is; an empty folder fails naming it."""

from __future__ import annotations

import json
from pathlib import Path

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


def _plan(data, name: str, budget_min: float, tmp_path):
    """``medseg-plan`` on a folder dataset: (the process, the written experiment, the fingerprint)."""
    out = tmp_path / "conf" / "experiment" / f"{name}.yaml"
    proc = run_cli("medseg.cli.plan", ["data=folder", f"data.root={data}", f"budget_min={budget_min}", f"name={name}",
                                       f"out={out}", f"hydra.run.dir={tmp_path / 'plan'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out, json.loads((tmp_path / "plan" / "fingerprint.json").read_text())


@pytest.mark.slow  # ~25 s of CPU (plan with measurements + a smoke training run): make test-slow
def test_plan_writes_a_runnable_commented_experiment(tmp_path):
    proc, out, fp = _plan(_folder(tmp_path / "blobs"), "blobs_planned", 0.5, tmp_path)
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

    # the command the summary prints is the one that runs it
    hint = next(ln for ln in proc.stdout.splitlines() if "run it:" in ln).split("run it:")[1].split()
    assert hint == ["medseg-train", "--config-dir", str((tmp_path / "conf").resolve()), "experiment=blobs_planned"]
    run = tmp_path / "run"
    proc = run_cli("medseg.cli.train", [*hint[1:], "debug=smoke", f"hydra.run.dir={run}"], tmp_path)
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


def _ct_folder(root, z_spacings=(3.0, 3.0, 4.0, 5.0, 5.0, 6.0)):
    """CT-like int16 volumes (air -1000 HU, a +40 HU body, a +60 HU lesion with noise) whose slice
    spacing varies from case to case: what nnU-Net resamples to one target spacing."""
    from medseg.data.formats.nifti import write_nifti

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    xx, yy, zz = np.mgrid[:32, :32, :12]  # NIfTI order: x, y, then the slices
    for i, dz in enumerate(z_spacings):
        body = (yy - 16) ** 2 + (xx - 16) ** 2 <= 14 ** 2
        cy, cx = rng.integers(10, 22, 2)
        lesion = ((yy - cy) ** 2 + (xx - cx) ** 2 <= 5 ** 2) & (abs(zz - 6) <= 3)
        hu = np.where(body, 40, -1000) + 20 * lesion + rng.normal(0, 10, body.shape)
        hu[:4, :4, :] = 1000  # a bone rod (1.6 % of voxels): the raw range reaches well past the foreground's
        affine = np.diag([0.8, 0.8, dz, 1.0])
        write_nifti(root / "images" / f"c{i}.nii.gz", hu.astype(np.int16), affine, spacing=(0.8, 0.8, dz))
        write_nifti(root / "masks" / f"c{i}.nii.gz", lesion.astype(np.uint8), affine, spacing=(0.8, 0.8, dz))
    return root


@pytest.mark.slow  # ~60 s of CPU (3D plan with measurements + a smoke training run): make test-slow
def test_plan_resamples_mixed_spacings_and_normalises_ct_as_nnunet(tmp_path):
    _, out, fp = _plan(_ct_folder(tmp_path / "ct"), "ct_planned", 0.3, tmp_path)  # fp: the training pool, 4-5 of 6
    sp = fp["spacing"]
    assert fp["modality"].startswith("CT-like") and sp["median"][:2] == pytest.approx([0.8, 0.8]) and sp["median"][2] >= 3.5
    fg = fp["intensity_foreground"][0]
    assert 40 < fg["mean"] < 80 and fp["intensity"][0]["p0.5"] < -900  # the lesion's HU, not the air's
    import yaml

    plan = yaml.safe_load(out.read_text())
    # anisotropic (>= 3.5 / 0.8 > 3): the median spacing with the slice axis at its 10th percentile
    dz = sp["p10"][2]
    assert dz < sp["median"][2] and plan["data"]["spacing"] == pytest.approx([0.8, 0.8, dz], rel=1e-4)
    *kept, clip, z = plan["data"]["preprocess"]  # data=folder's own GreenWeightedGray stays ahead (structural)
    assert [k["_target_"].rsplit(".", 1)[1] for k in kept] == ["GreenWeightedGray"]
    assert clip["_target_"].endswith("ClipIntensity") and clip["low"] == pytest.approx(fg["p0.5"], rel=1e-3)
    assert z["_target_"].endswith("ZScore") and z["mean"] == pytest.approx(fg["mean"], rel=1e-3)
    spacing_line = next(ln for ln in out.read_text().splitlines() if ln.strip().startswith("spacing:"))
    median = [32, 32, round(12 * sp["median"][2] / dz)]
    assert "10th percentile" in spacing_line and f"median image becomes {median}" in spacing_line

    run = tmp_path / "run"
    proc = run_cli("medseg.cli.train", ["--config-dir", str(tmp_path / "conf"), "experiment=ct_planned",  # the 3D patch
                                        "trainer.max_epochs=1", "data.samples_per_epoch=4", "data.batch_size=2",
                                        f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from medseg.pipelines.build import build_datamodule
    from tests.conftest import compose_cfg

    dm = build_datamodule(compose_cfg("train", [f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                                                "experiment=ct_planned"], tmp_path / "compose"))
    dm.prepare_data()
    dm.setup()
    case = next(c for cases in dm.cases.values() for c in cases if c.case_id == "c3")  # 12 slices at 5 mm
    assert case.spatial_shape == (32, 32, round(12 * 5.0 / dz))
    assert case.spacing == pytest.approx((0.8, 0.8, dz), rel=0.05) and case.meta["resampled_from"] == [32, 32, 12]
    # air clipped to the foreground's 0.5th percentile, then z-scored with the foreground's (not the case's) stats
    air = (clip["low"] - z["mean"]) / (z["std"] + 1e-6)
    assert float(case.image.min()) == pytest.approx(air, rel=1e-4) and air > -10


def test_run_command_points_hydra_at_the_experiment_folder(tmp_path):
    from medseg.cli._hydra import config_dir
    from medseg.pipelines.plan import run_command

    assert run_command(Path(config_dir()) / "experiment" / "mine.yaml", config_dir()) == "medseg-train experiment=mine"
    conf = (tmp_path / "conf").resolve()
    assert run_command(conf / "experiment" / "mine.yaml", config_dir()) == \
        f"medseg-train --config-dir {conf} experiment=mine"
    # not in an experiment/ folder: Hydra cannot find it there, so the command copies it into one
    loose = run_command(tmp_path / "mine.yaml", config_dir())
    assert f"cp {(tmp_path / 'mine.yaml').resolve()} conf/experiment/" in loose and "experiment=mine" in loose
