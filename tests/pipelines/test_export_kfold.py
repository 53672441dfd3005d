"""medseg-export on a real k-fold folder (the session's 2-fold run): the card's scores are the
folder's own out-of-fold and fold-ensemble tables, and the package predicts like medseg-predict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from PIL import Image

from tests.conftest import compose_cfg


def test_export_a_kfold_folder(kfold_dir, tiny_drive, tmp_path):
    from medseg.pipelines.export import export_run
    from medseg.pipelines.predict import predict

    pkg = export_run(compose_cfg("export", [f"run_dir={kfold_dir}"], tmp_path / "log"), tmp_path / "pkg")
    card = json.loads((pkg / "model_card.json").read_text())
    oof = pd.read_csv(kfold_dir / "oof_per_image.csv", index_col=0)
    cv, test = card["scores"]
    assert cv["n_cases"] == len(oof) and abs(cv["metrics"]["dice"]["mean"] - oof["dice"].mean()) < 1e-6
    ens = pd.read_csv(kfold_dir / "ensemble" / "models" / kfold_dir.name / "per_image.csv", index_col=0)
    assert test["n_cases"] == len(ens) and abs(test["metrics"]["dice"]["mean"] - ens["dice"].mean()) < 1e-6
    assert set(card["training_data"]["splits"]) == {"fold_0", "fold_1"}

    images = tiny_drive / "test" / "images"
    a = predict(compose_cfg("predict", [f"run_dir={kfold_dir}", f"input_dir={images}"], tmp_path / "a"), tmp_path / "a")
    b = predict(compose_cfg("predict", [f"package={pkg}", f"input_dir={images}"], tmp_path / "b"), tmp_path / "b")
    assert list(a.index) == list(b.index) and len(a) == 2
    for name in a.index:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a" / "masks" / f"{name}.png")),
                                      np.asarray(Image.open(tmp_path / "b" / "masks" / f"{name}.png")))
