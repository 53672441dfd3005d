"""The metrics config group: conf/metrics/default.yaml is today's selection; command-line restriction."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from medseg.cli._hydra import config_dir
from medseg.metrics import (
    AUC,
    SurfaceMetrics,
    compute_case_metrics,
    default_case_metrics,
    metric_names,
    metrics_from_config,
    surface_metrics,
)


def cfg(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose(name, overrides=overrides)


OVERLAP = ("dice", "iou", "accuracy", "precision", "recall", "specificity", "f1")


@pytest.mark.parametrize("entry,extra", [("train", []), ("kfold", []), ("eval", ["run_dir=x"]),
                                         ("ensemble", ["members=[a]"])])
def test_default_group_is_todays_selection(entry, extra):
    """Today's selection plus the thin-structure topology metrics (issue 18) for binary tasks."""
    ms = metrics_from_config(cfg(entry, extra))
    assert metric_names(ms, "binary") == (*OVERLAP, "auc", "ssim", "hd95", "nsd", "cldice", "betti0_error",
                                          "betti1_error")
    assert metric_names(ms, "binary") == metric_names(default_case_metrics(), "binary")
    assert metric_names(ms, "multilabel") == (*OVERLAP, "hd95", "nsd")
    assert metric_names(ms, "multiclass") == metric_names(default_case_metrics(), "multiclass")


def test_command_line_restricts_and_tolerance_is_settable():
    assert metric_names(metrics_from_config(cfg("train", ["metrics=[hd95]"])), "binary") == (*OVERLAP, "hd95")
    assert metric_names(metrics_from_config(cfg("kfold", ["metrics=[]"])), "binary") == OVERLAP
    # named explicitly, AUC applies to every task (the default keeps it to binary ones)
    assert "auc" in metric_names(metrics_from_config(cfg("eval", ["run_dir=x", "metrics=[auc,nsd]"])), "multilabel")
    surface = [m for m in metrics_from_config(cfg("eval", ["run_dir=x", "nsd_tolerance=2.5"]))
               if isinstance(m, SurfaceMetrics)]
    assert surface[0].tolerance == 2.5


def test_compute_case_metrics_matches_the_functions_and_skips_other_tasks():
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 16, 16)) > 0.5, rng.random((2, 16, 16)) > 0.5
    probs = rng.random((2, 16, 16))
    out = compute_case_metrics(default_case_metrics(nsd_tolerance=2.0), "multilabel", pred=pred, target=target,
                               probs=probs)
    assert "auc" not in out and out["dice"].shape == (2,)
    ref = surface_metrics(pred[None], target[None], tolerance=2.0)
    np.testing.assert_allclose(out["nsd"], ref["nsd"][0].numpy())
    with pytest.raises(ValueError, match="probabilities"):
        AUC()(pred, target)


def test_bad_metric_config_is_a_config_error():
    from omegaconf import OmegaConf

    from medseg.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics"):
        metrics_from_config(OmegaConf.create({"metrics": ["hd99"]}))


class _Volume:
    """A metric added from outside medseg.metrics: foreground voxels in mm^3 per class."""

    names = ("volume",)
    tasks = None

    def __call__(self, pred, target, *, probs=None, roi=None, spacing=None):
        vox = float(np.prod(spacing)) if spacing is not None else 1.0
        return {"volume": np.asarray(pred).reshape(len(pred), -1).sum(1) * vox}


def test_a_new_metric_reaches_the_tables_and_the_report_columns():
    import torch

    from medseg.data.case import Case
    from medseg.evaluation import evaluate_cases
    from medseg.evaluation.table import metric_columns
    from medseg.tasks import Task

    mask = np.zeros((6, 8, 8), np.int64)
    mask[1:3, 2:6, 2:6] = 1
    case = Case("c", np.zeros((1, 6, 8, 8), np.float32), mask, spacing=(2.0, 1.0, 1.0))
    per_image = evaluate_cases(lambda c: torch.from_numpy(c.mask.astype(np.float32))[None],
                               Task("binary", ["t"]), [case], 0.5, metrics=[_Volume()]).per_image
    assert per_image.loc["c", "volume"] == pytest.approx(2 * 16 * 2.0)
    assert per_image.loc["c", "dice"] == 1.0  # overlap metrics come with any selection
    assert metric_columns(per_image)[-1] == "volume" and "hd95" not in per_image


def test_topology_metrics_score_a_broken_vessel_and_skip_volumes():
    from medseg.metrics import TopologyMetrics

    target = np.zeros((1, 9, 9), bool)
    target[0, 4, 1:8] = True
    pred = target.copy()
    pred[0, 4, 4] = False  # one break: two components where the target has one
    m = TopologyMetrics()
    out = m(pred, target)
    assert out["betti0_error"][0] == 1 and out["betti1_error"][0] == 0 and out["cldice"][0] < 1
    assert m(target, target)["cldice"][0] == 1
    vol = m(np.zeros((1, 4, 4, 4), bool), np.zeros((1, 4, 4, 4), bool))  # 2D only by default
    assert np.isnan(vol["cldice"]).all()
