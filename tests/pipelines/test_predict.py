"""medseg-predict on a fold run: a split and a folder of images; PNGs, probabilities, RLE CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medseg.data.case import DataError
from medseg.errors import ConfigError
from medseg.inference.rle import read_rle_csv
from medseg.pipelines.predict import predict
from tests.conftest import compose_cfg, run_cli


def test_predict_folder_and_split(kfold_dir, tiny_drive, tmp_path):
    run = kfold_dir / "fold_0"
    images = tmp_path / "new"
    images.mkdir()
    for src in sorted((tiny_drive / "test" / "images").iterdir())[:2]:
        Image.open(src).convert("RGB").save(images / (src.stem + ".png"))
    out = tmp_path / "p"
    predict(compose_cfg("predict", [f"run_dir={run}", f"input_dir={images}", "save_probs=true", "rle=true"], out), out)
    table = pd.read_csv(out / "predictions.csv", index_col=0)
    assert len(table) == 2
    first = table.index[0]
    mask = np.asarray(Image.open(out / "masks" / f"{first}.png"))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
    probs = np.load(out / "probs" / f"{first}.npy")
    assert probs.shape == (1, 64, 64)
    assert np.array_equal(mask == 255, probs[0] > 0.5)
    sub = read_rle_csv(out / "submission.csv", (64, 64))
    assert np.array_equal(sub[(f"{first}.png", "vessel")], mask == 255)

    proc = run_cli("medseg.cli.predict", [f"run_dir={run}", "split=test", f"hydra.run.dir={tmp_path}/s"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "s" / "masks").glob("*.png"))) == 2


def test_predict_with_a_kfold_folder_is_the_fold_ensemble(kfold_dir, tmp_path):
    out = tmp_path / "e"
    table = predict(compose_cfg("predict", [f"run_dir={kfold_dir}", "split=test", "save_probs=true"], out), out)
    assert len(table) == 2
    ensemble_dice = pd.read_csv(kfold_dir / "ensemble" / "models" / "cv" / "per_image.csv", index_col=0)
    assert set(table.index) == set(ensemble_dice.index)  # the fold ensemble's test cases
    # the written probabilities are the mean of the two folds' (each fold predicted on its own)
    folds = []
    for k in range(2):
        o = tmp_path / f"f{k}"
        predict(compose_cfg("predict", [f"run_dir={kfold_dir / f'fold_{k}'}", "split=test", "save_probs=true"], o), o)
        folds.append(np.load(o / "probs" / f"{table.index[0]}.npy").astype(np.float32))
    mean = np.load(out / "probs" / f"{table.index[0]}.npy").astype(np.float32)
    assert np.abs(mean - (folds[0] + folds[1]) / 2).max() < 2e-3  # float16 storage


def test_predict_reports_a_missing_folder(kfold_dir, tmp_path):
    cfg = compose_cfg("predict", [f"run_dir={kfold_dir / 'fold_0'}", f"input_dir={tmp_path}/none"], tmp_path / "p")
    with pytest.raises(DataError, match="input folder not found"):
        predict(cfg, tmp_path / "p")


def test_a_bad_rle_order_is_refused_before_any_inference(kfold_dir, tmp_path):
    out = tmp_path / "p"
    cfg = compose_cfg("predict", [f"run_dir={kfold_dir / 'fold_0'}", "rle=true", "rle_order=X"], out)
    with pytest.raises(ConfigError, match="rle_order='X'"):
        predict(cfg, out)
    assert not out.exists() or not any(out.iterdir())  # nothing predicted, nothing half-written


def test_predict_a_selection_on_a_labelled_split_scores_its_decisions(kfold_dir, tmp_path):
    """``medseg-predict selection=<selection.json> split=test``: the held-out split scored with the
    selection's threshold and post-processing, i.e. the Dice of the masks written."""
    import json

    from omegaconf import open_dict

    from medseg.inference.postprocess import component_sizes
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.eval import load_run_config

    plain = tmp_path / "plain"  # the fold ensemble's probabilities, to put the threshold where masks have pieces
    predict(compose_cfg("predict", [f"run_dir={kfold_dir}", "split=test", "save_probs=true", "score=false"], plain),
            plain)
    probs = {p.stem: np.load(p).astype(np.float32) for p in (plain / "probs").glob("*.npy")}
    thr = round(float(np.quantile(np.concatenate([p.ravel() for p in probs.values()]), 0.8)), 4)
    assert max(len(component_sizes(p[0] > thr)) for p in probs.values()) > 1  # the rule has something to do
    sel = tmp_path / "selection.json"
    sel.write_text(json.dumps({"task": {"kind": "binary", "class_names": ["vessel"]},
                               "members": [{"path": str(kfold_dir), "weight": 1.0}], "temperature": 1.0,
                               "thresholds": [thr], "postprocessing": [{"rule": "largest"}]}))
    out = tmp_path / "s"
    predict(compose_cfg("predict", [f"selection={sel}", "split=test"], out), out)
    per_image = pd.read_csv(out / "per_image.csv", index_col=0)
    run_cfg = load_run_config(kfold_dir / "fold_0")
    with open_dict(run_cfg):
        run_cfg.data.fold = None
    cases = build_datamodule(run_cfg).cases["test"]
    assert sorted(per_image.index) == sorted(c.case_id for c in cases)
    for case in cases:
        written = np.asarray(Image.open(out / "masks" / f"{case.case_id}.png")) == 255
        assert len(component_sizes(written)) == 1
        roi = np.ones(written.shape, bool) if case.roi is None else case.roi
        p, t = written[roi], (case.mask > 0)[roi]
        tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
        assert per_image.loc[case.case_id, "dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    meta = json.loads((out / "evaluation.json").read_text())
    assert meta["source"]["selection"] == str(sel.resolve()) and meta["threshold"] is None
    assert f"thresholds [{thr}]" in meta["threshold_note"] and "vessel: keep largest component" in meta["threshold_note"]
