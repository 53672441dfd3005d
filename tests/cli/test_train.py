"""End-to-end: ``medseg-train`` and ``medseg-eval`` as a user runs them, plus config and data errors."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from medseg.metrics.overlap import METRIC_NAMES
from tests.conftest import SHARED_DRIVE, run_cli

SMOKE = ["debug=smoke"]


@pytest.fixture(scope="module")
def finished_run(tiny_drive, tmp_path_factory):
    """One tiny medseg-train run through the real CLI (subprocess)."""
    cwd = tmp_path_factory.mktemp("cli")
    run_dir = cwd / "run"
    proc = run_cli("medseg.cli.train", SMOKE + ["trainer.max_epochs=2", f"data.root={tiny_drive}",
                                                f"hydra.run.dir={run_dir}"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def test_run_folder_contents(finished_run):
    run_dir, proc = finished_run
    for rel in (".hydra/config.yaml", ".hydra/overrides.yaml", "checkpoints/last.ckpt", "metrics.csv",
                "loss_curve.png", "per_image.csv", "report.md", "splits.json", "results.json"):
        assert (run_dir / rel).is_file(), rel
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    overlays = sorted(p.name.split("_")[0] for p in (run_dir / "overlays").glob("*.png"))
    assert overlays == ["best", "worst"]  # two test images: best and worst, never one case twice (#12 item 10)
    assert str(run_dir) in proc.stdout  # tells the user where the results are


def test_metrics_are_numbers_in_range(finished_run):
    run_dir, _ = finished_run
    epochs = pd.read_csv(run_dir / "metrics.csv")
    assert list(epochs["epoch"]) == [0, 1]
    for col in ("train/loss", "val/loss", "val/dice"):
        assert epochs[col].notna().all() and (epochs[col] >= 0).all(), col
    assert (epochs["val/dice"] <= 1).all()
    per_image = pd.read_csv(run_dir / "per_image.csv", index_col=0)
    assert list(per_image.index) == ["01_test", "02_test"]
    for m in METRIC_NAMES:
        assert per_image[m].between(0, 1).all(), m
    results = json.loads((run_dir / "results.json").read_text())
    assert math.isclose(results["test/dice"], per_image["dice"].mean(), rel_tol=1e-6)


def test_report_has_seed_table(finished_run):
    run_dir, _ = finished_run
    report = (run_dir / "report.md").read_text()
    for needle in ("| 01_test |", "| max |", "| min |", "| mean |", "field-of-view", "best global threshold",
                   "overlays/best_"):
        assert needle in report, needle
    splits = json.loads((run_dir / "splits.json").read_text())
    assert splits["test"] == ["01_test", "02_test"] and len(splits["train"]) + len(splits["val"]) == 6


def test_medseg_eval_reproduces_test_metrics(finished_run, tmp_path):
    run_dir, _ = finished_run
    out = tmp_path / "eval"
    proc = run_cli("medseg.cli.evaluate", [f"run_dir={run_dir}", "ckpt=best", f"hydra.run.dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = pd.read_csv(run_dir / "per_image.csv", index_col=0)
    b = pd.read_csv(out / "per_image.csv", index_col=0)
    pd.testing.assert_frame_equal(a, b, atol=1e-6)


def test_config_typos_fail_before_training(tmp_path, tiny_drive):
    bad_group = run_cli("medseg.cli.train", ["model=unett", f"data.root={tiny_drive}"], tmp_path)
    assert bad_group.returncode != 0
    assert "Could not find 'model/unett'" in bad_group.stderr
    bad_key = run_cli("medseg.cli.train", ["trainer.max_epoch=3", f"data.root={tiny_drive}"], tmp_path)
    assert bad_key.returncode != 0
    assert "Could not override 'trainer.max_epoch'" in bad_key.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))


def test_missing_and_empty_data_root(tmp_path):
    missing = tmp_path / "nowhere" / "DRIVE"
    proc = run_cli("medseg.cli.train", SMOKE + ["data=drive", f"data.root={missing}"], tmp_path)
    assert proc.returncode != 0 and f"{missing}: data.root does not exist" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("medseg.cli.train", SMOKE + [f"data.root={empty}"], tmp_path)
    assert proc.returncode != 0 and f"{empty}: data.root is an empty folder" in proc.stderr


def test_synthetic_data_is_never_written_outside_data_dir(tmp_path):
    typo = tmp_path / "elsewhere" / "DRIVE_typo"
    proc = run_cli("medseg.cli.train", SMOKE + [f"data.root={typo}"], tmp_path)
    assert proc.returncode != 0 and "synthetic data is only generated under" in proc.stderr
    assert not typo.exists()


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_DRIVE.is_dir(), reason="../shared/data/DRIVE not present (fresh clone)")
def test_one_short_epoch_on_real_drive(tmp_path):
    run_dir = tmp_path / "real"
    proc = run_cli("medseg.cli.train", SMOKE + ["data=drive", f"data.root={SHARED_DRIVE}", "data.val_fraction=0.1",
                                                "data.test_fraction=0.1", f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    splits = json.loads((run_dir / "splits.json").read_text())
    assert len(splits["train"]) + len(splits["val"]) + len(splits["test"]) == 20
    per_image = pd.read_csv(run_dir / "per_image.csv", index_col=0)
    assert len(per_image) == len(splits["test"]) and per_image["dice"].between(0, 1).all()


@pytest.mark.slow
def test_plain_multirun_writes_one_run_per_job(tiny_drive, tmp_path):
    """``medseg-train -m a=1,2`` with Hydra's basic sweeper: the sweep folder resolves before any job
    (it used ``${hydra:runtime.cwd}``, which failed there) and each job writes its own results."""
    proc = run_cli("medseg.cli.train", ["-m", *SMOKE, "seed=1,2", "trainer.max_epochs=1",
                                        f"data.root={tiny_drive}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(tmp_path.glob("outputs/train/multirun/*/*/results.json"))
    assert [p.parent.name for p in results] == ["0", "1"]
    assert ["seed=1" in (p.parent / ".hydra" / "overrides.yaml").read_text() for p in results] == [True, False]
