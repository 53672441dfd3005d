"""The evaluation pipeline end to end on a tiny trained run: tables, thresholds, TTA, saved probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseg.evaluation import model_probs
from medseg.pipelines.build import build_datamodule, build_module
from medseg.pipelines.eval import evaluate_split


@pytest.fixture
def tiny_module(train_cfg, tiny_drive):
    cfg, run_dir = train_cfg(["debug=smoke", f"data.root={tiny_drive}"])
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    return module, dm, run_dir


def test_evaluate_split_writes_all_metrics(tiny_module, tmp_path):
    module, dm, _ = tiny_module
    per_image = evaluate_split(module, dm, tmp_path, split="test", overlays=True).per_image
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
                               metrics=(), probs_dir=tmp_path / "probs").per_image
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


def test_tta_options_from_a_hydra_config_are_honoured(tiny_module, monkeypatch):
    """``tta={flips: true, rot90: false}`` on the command line arrives as a DictConfig, not a dict."""
    from omegaconf import OmegaConf

    module, dm, _ = tiny_module
    calls = []
    forward = module.predict_logits
    monkeypatch.setattr(module, "predict_logits", lambda x: calls.append(1) or forward(x))
    model_probs(module, tta=OmegaConf.create({"flips": True, "rot90": False}))(dm.cases["test"][0])
    assert len(calls) == 4  # identity + 3 flips; the full 2D set (True) would be 8
    calls.clear()
    model_probs(module, tta=True)(dm.cases["test"][0])
    assert len(calls) == 8


def test_saved_probabilities_are_downsampled_to_max_size(tmp_path):
    import torch

    from medseg.evaluation import save_probs

    probs = torch.zeros(2, 40, 20)
    probs[1, :20] = 1.0
    save_probs(tmp_path / "p.npy", probs, max_size=10)
    small = np.load(tmp_path / "p.npy")
    assert small.shape == (2, 10, 5) and small[1, :5].min() == 1.0 and small[1, 5:].max() == 0.0
    save_probs(tmp_path / "q.npy", probs, max_size=64)
    assert np.load(tmp_path / "q.npy").shape == (2, 40, 20)


def test_metric_choice():
    from medseg.evaluation import default_metrics
    from medseg.metrics.case import EXTRA_METRIC_NAMES
    from medseg.tasks import Task

    # binary tasks get every extra metric by default, multi-label ones the surface metrics only
    assert default_metrics(Task("binary", ["vessel"])) == EXTRA_METRIC_NAMES
    assert default_metrics(Task("multilabel", ["a", "b"])) == ("hd95", "nsd")
    assert default_metrics(Task("binary", ["vessel"]), ["hd95"]) == ("hd95",)
    assert default_metrics(Task("binary", ["vessel"]), []) == ()  # metrics=[]: overlap metrics only
    with pytest.raises(ValueError, match="unknown metrics"):
        default_metrics(Task("binary", ["vessel"]), ["hd99"])


def test_3d_cases_use_voxel_spacing_for_surface_metrics():
    import torch

    from medseg.data.case import Case
    from medseg.evaluation import evaluate_cases
    from medseg.tasks import Task

    mask = np.zeros((12, 10, 10), np.int64)
    mask[3:8, 3:7, 3:7] = 1

    def shifted(case):  # the prediction is the target moved one slice along D
        p = np.roll(case.mask, 1, axis=0).astype(np.float32)
        return torch.from_numpy(p)[None]

    task = Task("binary", ["tumour"])
    cases = [Case("iso", np.zeros((1, 12, 10, 10), np.float32), mask, spacing=(1.0, 1.0, 1.0)),
             Case("aniso", np.zeros((1, 12, 10, 10), np.float32), mask, spacing=(2.5, 1.0, 1.0))]
    table = evaluate_cases(shifted, task, cases, 0.5, metrics=("hd95", "nsd"), nsd_tolerance=1.0)
    per_image, per_class = table.per_image, table.per_class
    assert per_image.loc["iso", "hd95"] == pytest.approx(1.0)
    assert per_image.loc["aniso", "hd95"] == pytest.approx(2.5)
    assert per_image.loc["aniso", "nsd"] < per_image.loc["iso", "nsd"]
    assert per_image.loc["iso", "dice"] == pytest.approx(2 * 64 / 160)  # 4 of 5 slices overlap
    assert list(per_class["class"]) == ["tumour", "tumour"]


def test_3d_overlay_slices_through_the_tumour(tmp_path):
    from PIL import Image

    from medseg.report.plots import plot_overlay_3d

    target = np.zeros((16, 20, 24), bool)
    target[4:9, 5:12, 6:15] = True
    path = plot_overlay_3d(np.random.default_rng(0).random((2, 16, 20, 24)), target, np.roll(target, 2, 2),
                           tmp_path / "o.png", "case")
    w, h = Image.open(path).size
    assert h > w * 0.5  # three rows of views
    nifti = plot_overlay_3d(np.zeros((1, 16, 20, 24)), target, target, tmp_path / "n.png", nifti_order=True)
    assert nifti.is_file()
