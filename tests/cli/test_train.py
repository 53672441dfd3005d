"""End-to-end: ``medseg-train`` as a user runs it (what the terminal shows included), plus config and data errors."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from medseg.metrics.overlap import METRIC_NAMES
from tests.conftest import SHARED_DRIVE, assert_beats_constant, run_cli

SMOKE = ["debug=smoke"]
TEST_AUC_FLOOR = 0.58  # per-image and mean test AUC of finished_run: measured 0.811 / 0.650, mean 0.731


# finished_run (tests/cli/conftest.py): one tiny medseg-train run through the real CLI, shared by the session


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
    per_image = pd.read_csv(run_dir / "per_image.csv", index_col=0)
    assert list(per_image.index) == ["01_test", "02_test"]
    assert set(METRIC_NAMES) <= set(per_image.columns)
    results = json.loads((run_dir / "results.json").read_text())
    assert math.isclose(results["test/dice"], per_image["dice"].mean(), abs_tol=1e-6)  # the CSV has 6 decimals
    assert math.isclose(results["val/best_dice"], epochs["val/dice"].max(), rel_tol=1e-6)  # the monitored value
    # the trained net ranks vessel pixels above background in each test image (a constant predictor: AUC 0.5)
    assert (per_image["auc"] >= TEST_AUC_FLOOR).all(), per_image["auc"]
    assert_beats_constant(results, TEST_AUC_FLOOR)
    assert results["test/dice"] > 0.0  # the all-background prediction's Dice (measured here: 0.111)


def test_report_has_seed_table(finished_run):
    run_dir, _ = finished_run
    report = (run_dir / "report.md").read_text()
    for needle in ("| 01_test |", "| max |", "| min |", "| mean |", "field-of-view", "best global threshold",
                   "overlays/best_"):
        assert needle in report, needle
    splits = json.loads((run_dir / "splits.json").read_text())
    assert splits["test"] == ["01_test", "02_test"] and len(splits["train"]) + len(splits["val"]) == 6


# Hydra's log prefix and Lightning's own ("INFO: "): the same event printed by both reads the same without them
LOG_PREFIX = re.compile(r"^(\[[^]]+\]\[[^]]+\]\[[A-Z]+\] - |INFO: )")


def terminal_lines(proc) -> list[str]:
    return [LOG_PREFIX.sub("", line).rstrip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def assert_terminal_reads_once(proc) -> None:
    """One line per event, no library advertisement or deprecation noise, no logger version on the bar."""
    lines = terminal_lines(proc)
    repeated = sorted({line for line in lines if lines.count(line) > 1})
    assert not repeated, f"printed more than once: {repeated}"
    text = proc.stdout + proc.stderr
    for noise in ("litlogger", "pytree", "LeafSpec", "v_num"):
        assert noise not in text, noise


def test_plain_terminal_counts_epochs_from_one_and_prints_each_line_once(finished_run):
    _, proc = finished_run
    assert_terminal_reads_once(proc)
    epochs = re.findall(r"\bepoch (\d+)/(\d+)\b", proc.stdout + proc.stderr)
    assert epochs == [("1", "2"), ("2", "2")]
    assert sum("`Trainer.fit` stopped" in line for line in terminal_lines(proc)) == 1


def test_rich_bar_counts_epochs_from_one_and_ends_its_line_before_fit_stops(tiny_drive, tmp_path):
    """The Rich bar (forced: the subprocess has no TTY, so Rich prints the bar's final state when it stops)."""
    proc = run_cli("medseg.cli.train", SMOKE + ["trainer.max_epochs=2", f"data.root={tiny_drive}",
                                                "+callbacks.progress.force=rich", f"hydra.run.dir={tmp_path / 'run'}"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_terminal_reads_once(proc)
    lines = terminal_lines(proc)
    bars = [i for i, line in enumerate(lines) if line.startswith("Epoch ")]
    assert bars and all(re.match(r"Epoch 2/2\b", lines[i]) for i in bars), [lines[i] for i in bars]
    stopped = [i for i, line in enumerate(lines) if "`Trainer.fit` stopped" in line]
    assert len(stopped) == 1 and lines[stopped[0]].startswith("`Trainer.fit` stopped")  # not glued onto the bar
    assert bars[-1] < stopped[0]  # the bar was ended (printed) before Lightning said why fit stopped


def test_config_typos_fail_before_training(tmp_path, tiny_drive):
    bad_group = run_cli("medseg.cli.train", ["model=unett", f"data.root={tiny_drive}"], tmp_path)
    assert bad_group.returncode != 0
    assert "Could not find 'model/unett'" in bad_group.stderr
    bad_key = run_cli("medseg.cli.train", ["trainer.max_epoch=3", f"data.root={tiny_drive}"], tmp_path)
    assert bad_key.returncode != 0
    assert "Could not override 'trainer.max_epoch'" in bad_key.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_missing_and_empty_data_root(tmp_path):
    missing = tmp_path / "nowhere" / "DRIVE"
    proc = run_cli("medseg.cli.train", SMOKE + ["data=drive", f"data.root={missing}"], tmp_path)
    assert proc.returncode != 0 and f"{missing}: data.root does not exist" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("medseg.cli.train", SMOKE + [f"data.root={empty}"], tmp_path)
    assert proc.returncode != 0 and f"{empty}: data.root is an empty folder" in proc.stderr


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_synthetic_data_is_never_written_outside_data_dir(tmp_path):
    typo = tmp_path / "elsewhere" / "DRIVE_typo"
    proc = run_cli("medseg.cli.train", SMOKE + [f"data.root={typo}"], tmp_path)
    assert proc.returncode != 0 and "synthetic data is only generated under" in proc.stderr
    assert not typo.exists()


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
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
