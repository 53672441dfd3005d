"""AUC and SSIM: values checked against independent implementations (sklearn-free rank AUC, skimage SSIM)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata
from skimage.metrics import structural_similarity

from medseg.metrics.image import auc_roc, image_metrics, ssim


def rank_auc(p: np.ndarray, t: np.ndarray) -> float:
    """Mann-Whitney form of the AUC (ties count half)."""
    r = rankdata(p)
    n1, n0 = t.sum(), (~t).sum()
    return float((r[t].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_auc_matches_mann_whitney_inside_roi():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(32, 32, generator=g) < 0.3
    p = (t.float() * 0.3 + torch.rand(32, 32, generator=g)).clamp(0, 1)
    p = torch.round(p * 20) / 20  # ties
    roi = torch.zeros(32, 32, dtype=torch.bool)
    roi[4:28, 2:30] = True
    ours = auc_roc(p, t, roi=roi)
    assert abs(ours - rank_auc(p[roi].numpy(), t[roi].numpy())) < 1e-6
    assert abs(auc_roc(p, t) - rank_auc(p.numpy().ravel(), t.numpy().ravel())) < 1e-6
    assert ours != auc_roc(p, t)


def test_auc_undefined_for_single_class_target():
    assert np.isnan(auc_roc(torch.rand(8, 8), torch.zeros(8, 8, dtype=torch.bool)))


def test_ssim_matches_skimage_gaussian():
    g = torch.Generator().manual_seed(1)
    t = torch.rand(48, 48, generator=g) < 0.4
    p = (0.6 * t.float() + 0.4 * torch.rand(48, 48, generator=g))
    ours = ssim(p, t)
    ref = structural_similarity(p.double().numpy(), t.double().numpy(), data_range=1.0, gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False)
    # torchmetrics excludes the 5-pixel border that skimage pads; both agree closely, not exactly
    assert abs(ours - ref) < 0.02
    assert ssim(t.float(), t) > 0.999
    assert ours < 0.99


def test_image_metrics_shapes():
    p = torch.rand(3, 16, 16)
    t = p > 0.5
    out = image_metrics(p[None], t[None])
    assert out["auc"].shape == (1, 3) and np.allclose(out["auc"], 1.0)
    assert out["ssim"].shape == (1, 3)
