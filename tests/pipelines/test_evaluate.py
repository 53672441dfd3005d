"""The evaluation pipeline end to end on a tiny trained run: tables, thresholds, TTA, saved probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseg.pipelines.build import build_datamodule, build_module
from medseg.pipelines.evaluate import evaluate_split, model_probs


@pytest.fixture
def tiny_module(train_cfg, tiny_drive):
    cfg, run_dir = train_cfg(["debug=smoke", f"data.root={tiny_drive}"])
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    return module, dm, run_dir


def test_evaluate_split_writes_all_metrics(tiny_module, tmp_path):
    module, dm, _ = tiny_module
    per_image = evaluate_split(module, dm, tmp_path, split="test", overlays=True)
    for m in ("dice", "iou", "precision", "recall", "specificity", "auc", "ssim", "hd95", "nsd"):
        assert m in per_image.columns
    assert len(per_image) == len(dm.cases["test"])
    on_disk = pd.read_csv(tmp_path / "per_image.csv", index_col=0)
    np.testing.assert_allclose(on_disk["dice"].to_numpy(), per_image["dice"].to_numpy(), atol=1e-6)
    assert (tmp_path / "per_class.csv").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "Threshold 0.50 (fixed)" in report and "hd95" in report
    assert len(list((tmp_path / "overlays").glob("*.png"))) >= 1


def test_auto_threshold_is_reported_and_probs_saved(tiny_module, tmp_path):
    module, dm, _ = tiny_module
    per_image = evaluate_split(module, dm, tmp_path, split="test", overlays=False, threshold="auto",
                               metrics=(), probs_dir=tmp_path / "probs")
    thr = per_image.attrs["threshold"]
    assert 0.0 < thr < 1.0
    assert f"Threshold **{thr:.2f}** chosen on the validation split" in (tmp_path / "report.md").read_text()
    saved = np.load(tmp_path / "probs" / f"{dm.cases['test'][0].case_id}.npy")
    direct = model_probs(module)(dm.cases["test"][0]).numpy()
    assert saved.dtype == np.float16 and np.abs(saved - direct).max() < 1e-3


def test_tta_changes_probabilities_but_keeps_shape(tiny_module):
    module, dm, _ = tiny_module
    case = dm.cases["test"][0]
    plain, tta = model_probs(module)(case), model_probs(module, tta=True)(case)
    assert plain.shape == tta.shape
    assert not np.allclose(plain.numpy(), tta.numpy())  # an untrained net is not flip-invariant
    assert float(tta.min()) >= 0.0 and float(tta.max()) <= 1.0


def test_saved_probabilities_are_downsampled_to_max_size(tmp_path):
    import torch

    from medseg.pipelines.evaluate import save_probs

    probs = torch.zeros(2, 40, 20)
    probs[1, :20] = 1.0
    save_probs(tmp_path / "p.npy", probs, max_size=10)
    small = np.load(tmp_path / "p.npy")
    assert small.shape == (2, 10, 5) and small[1, :5].min() == 1.0 and small[1, 5:].max() == 0.0
    save_probs(tmp_path / "q.npy", probs, max_size=64)
    assert np.load(tmp_path / "q.npy").shape == (2, 40, 20)


def test_metric_choice():
    from medseg.pipelines.evaluate import EXTRA_METRICS, chosen_metrics

    assert chosen_metrics(None) == EXTRA_METRICS and chosen_metrics([]) == ()
    with pytest.raises(ValueError, match="unknown metrics"):
        chosen_metrics(["hd99"])
