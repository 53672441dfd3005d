"""``medseg-eval`` as a user runs it on a finished ``medseg-train`` run (tests/cli/conftest.py), and its errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.cli.conftest import assert_one_line_error
from tests.conftest import run_cli


def test_medseg_eval_reproduces_test_metrics(finished_run, tmp_path):
    run_dir, _ = finished_run
    out = tmp_path / "eval"
    proc = run_cli("medseg.cli.evaluate", [f"run_dir={run_dir}", "ckpt=best", f"hydra.run.dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = pd.read_csv(run_dir / "per_image.csv", index_col=0)
    b = pd.read_csv(out / "per_image.csv", index_col=0)
    pd.testing.assert_frame_equal(a, b, atol=1e-6)
    assert (out / "report.md").is_file()
    trained = json.loads((run_dir / "results.json").read_text())
    assert abs(b["dice"].mean() - trained["test/dice"]) < 1e-6 and abs(b["auc"].mean() - trained["test/auc"]) < 1e-6


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_missing_run_folder_and_checkpoint(finished_run, tmp_path):
    missing = tmp_path / "no_run"
    proc = run_cli("medseg.cli.evaluate", [f"run_dir={missing}", f"hydra.run.dir={tmp_path / 'e1'}"], tmp_path)
    assert_one_line_error(proc, "medseg-eval", 3, f"{missing}: not a medseg run folder (no .hydra/config.yaml)")
    run_dir, _ = finished_run
    proc = run_cli("medseg.cli.evaluate", [f"run_dir={run_dir}", "ckpt=nosuch", f"hydra.run.dir={tmp_path / 'e2'}"],
                   tmp_path)
    assert_one_line_error(proc, "medseg-eval", 4, "nosuch: checkpoint not found")
