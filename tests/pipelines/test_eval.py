"""medseg-eval on a fold run folder: auto threshold, TTA, chosen metrics, results.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from medseg.errors import ConfigError
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


def test_eval_with_postprocessing_scores_the_post_processed_masks(kfold_dir, tmp_path):
    """``postprocessing=`` applies after the threshold to everything scored and saved: the masks saved
    are the raw ones after the rule, and the Dice of the table is theirs. A selection.json gives the
    same rules as the override."""
    from medseg.evaluation import load_prediction, model_probs
    from medseg.inference.postprocess import component_sizes, keep_largest
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.eval import load_model, load_run_config

    fold = kfold_dir / "fold_0"
    dm = build_datamodule(load_run_config(fold))
    module, _ = load_model(load_run_config(fold), dm, fold)
    probs = torch.cat([model_probs(module)(c).flatten() for c in dm.cases["test"]])
    thr = float(probs.quantile(0.8))  # the smoke run's nets are barely trained: 20 % foreground, in pieces

    def run(name, *extra):
        out = tmp_path / name
        evaluate_run(compose_cfg("eval", [f"run_dir={fold}", "metrics=[]", f"threshold={thr}", *extra], out), out)
        return out, pd.read_csv(out / "per_image.csv", index_col=0)

    raw_dir, raw = run("raw")
    post_dir, post = run("post", "postprocessing=largest")
    raw_masks = {c: load_prediction(raw_dir / "predictions" / f"{c}.npz")[0] for c in raw.index}
    assert max(len(component_sizes(m[0])) for m in raw_masks.values()) > 1  # the rule has something to do
    for case in dm.cases["test"]:
        saved = load_prediction(post_dir / "predictions" / f"{case.case_id}.npz")[0]
        assert np.array_equal(saved[0], keep_largest(raw_masks[case.case_id][0]))
        roi = np.ones(case.mask.shape, bool) if case.roi is None else case.roi
        p, t = saved[0][roi], (case.mask > 0)[roi]
        tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
        assert post.loc[case.case_id, "dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    assert not np.allclose(raw["dice"], post["dice"])
    meta = json.loads((post_dir / "evaluation.json").read_text())
    assert meta["source"]["postprocessing"] == [{"rule": "largest"}]
    assert "Post-processing after the threshold: vessel: keep largest component." in (post_dir / "report.md").read_text()

    rule = {"rule": "min_size", "min_size": 6}
    (tmp_path / "sel").mkdir()
    (tmp_path / "sel" / "selection.json").write_text(json.dumps(
        {"task": {"kind": "binary", "class_names": ["vessel"]}, "members": [{"path": str(fold), "weight": 1.0}],
         "thresholds": [0.5], "postprocessing": [rule]}))
    _, by_file = run("file", f"postprocessing={tmp_path / 'sel'}")
    _, by_rule = run("rule", "postprocessing={rule: min_size, min_size: 6}")
    pd.testing.assert_frame_equal(by_file, by_rule)

    with pytest.raises(ConfigError, match="postprocessing=bogus: neither a rule"):
        run("bad", "postprocessing=bogus")
    with pytest.raises(ConfigError, match="postprocessing: class 'vessel': rule min_size needs a positive"):
        run("bad2", "postprocessing={rule: min_size}")
    assert not (tmp_path / "bad" / "per_image.csv").exists()
