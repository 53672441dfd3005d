"""medseg-eval on a fold run folder: auto threshold, TTA, chosen metrics, results.json."""

from __future__ import annotations

import json

import pandas as pd

from medseg.pipelines.eval import evaluate_run
from tests.conftest import compose_cfg


def test_eval_run_with_auto_threshold_and_tta(kfold_dir, tmp_path):
    out = tmp_path / "ev"
    cfg = compose_cfg("eval", [f"run_dir={kfold_dir / 'fold_1'}", "threshold=auto", "tta=true",
                               "metrics=[auc,nsd]", "nsd_tolerance=2.0"], out)
    evaluate_run(cfg, out)
    results = json.loads((out / "results.json").read_text())
    assert {"test/dice", "test/auc", "test/nsd", "threshold", "checkpoint"} <= set(results)
    assert "test/hd95" not in results
    per_image = pd.read_csv(out / "per_image.csv", index_col=0)
    assert abs(per_image["dice"].mean() - results["test/dice"]) < 1e-6
    assert "chosen on the validation split" in (out / "report.md").read_text()


def test_eval_checkpoint_plus_config(kfold_dir, tmp_path):
    fold = kfold_dir / "fold_0"
    ckpt = next((fold / "checkpoints").glob("best*.ckpt"))
    out = tmp_path / "ev"
    cfg = compose_cfg("eval", [f"run_dir={tmp_path}", f"ckpt={ckpt}", f"config={fold / '.hydra' / 'config.yaml'}",
                               "metrics=[]"], out)
    evaluate_run(cfg, out)
    results = json.loads((out / "results.json").read_text())
    assert results["checkpoint"] == str(ckpt)
    assert "test/dice" in results and "test/hd95" not in results and "test/auc" not in results  # metrics=[]
