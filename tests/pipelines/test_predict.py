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
