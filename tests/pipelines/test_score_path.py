"""Every entry point scores a case through the one function medseg.evaluation.score_case (#12 item 1):
train, eval, k-fold (out-of-fold), ensemble, predict (a labelled split) and select (a sweep trial's
validation split). The function is wrapped to record its callers; each pipeline must reach it."""

from __future__ import annotations

import shutil
import traceback

import pandas as pd
import pytest
from omegaconf import OmegaConf

import medseg.evaluation.scoring as scoring
from tests.conftest import compose_cfg


@pytest.fixture
def calls(monkeypatch):
    seen: list[str] = []
    real = scoring.score_case

    def recording(*args, **kwargs):
        # the outermost pipeline module on the stack: the entry point's own (train.py, not eval.py under it)
        files = [f.filename for f in traceback.extract_stack() if "/medseg/pipelines/" in f.filename]
        seen.append(files[0].rsplit("/", 1)[-1] if files else "?")
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_case", recording)
    return seen


def test_every_entry_point_scores_through_score_case(kfold_dir, tiny_drive, train_cfg, tmp_path, calls):
    from medseg.pipelines.ensemble import evaluate_ensemble
    from medseg.pipelines.eval import evaluate_run
    from medseg.pipelines.kfold import score_oof
    from medseg.pipelines.predict import predict
    from medseg.pipelines.select import predict_trial_validation
    from medseg.pipelines.train import train

    cfg, run_dir = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "model.base_channels=4",
                              "data.samples_per_epoch=4", "data.baseline=null", "save_predictions=false"])
    results = train(cfg, run_dir)
    assert set(calls) == {"train.py"} and len(calls) == 2  # the two test images
    assert results["test/dice"] == pytest.approx(pd.read_csv(run_dir / "per_image.csv", index_col=0)["dice"].mean(),
                                                 abs=1e-6)

    def reached(name, run):
        calls.clear()
        run()
        assert calls and set(calls) == {name}, calls

    fold = kfold_dir / "fold_0"
    reached("eval.py", lambda: evaluate_run(compose_cfg("eval", [f"run_dir={fold}", "metrics=[]"], tmp_path / "e"),
                                            tmp_path / "e"))
    copy = tmp_path / "fold_copy"
    shutil.copytree(fold, copy, ignore=shutil.ignore_patterns("oof"))
    fcfg = OmegaConf.load(copy / ".hydra" / "config.yaml")
    reached("kfold.py", lambda: score_oof(OmegaConf.create({"metrics": [], "save_oof_probs": False}), fcfg, copy))
    compose_cfg("ensemble", ["members=[x]"], tmp_path / "ctx")
    reached("ensemble.py", lambda: evaluate_ensemble([kfold_dir], tmp_path / "ens", metrics=()))
    out = tmp_path / "p"
    reached("predict.py", lambda: predict(compose_cfg("predict", [f"run_dir={fold}", "split=test", "metrics=[]"], out),
                                          out))
    assert (out / "per_image.csv").is_file() and (out / "masks").is_dir()
    trial = tmp_path / "trial_0"
    shutil.copytree(fold, trial, ignore=shutil.ignore_patterns("oof"))
    reached("select.py", lambda: predict_trial_validation(trial))
