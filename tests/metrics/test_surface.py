"""HD95 and normalised surface Dice against MONAI, with spacing, plus the empty-mask conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import HausdorffDistanceMetric, SurfaceDiceMetric

from medseg.metrics.surface import hd95, image_diagonal, normalized_surface_dice, surface_metrics


def blobs(seed: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping random blob masks (smoothed noise), never empty."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
    b = ndimage.gaussian_filter(rng.random(shape), 2) > 0.5
    a.flat[0] = b.flat[-1] = True
    return a, b


def monai_hd95(a, b, spacing):
    metric = HausdorffDistanceMetric(include_background=True, percentile=95)
    return float(metric(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], spacing=spacing))


def monai_nsd(a, b, tol, spacing):
    metric = SurfaceDiceMetric(class_thresholds=[tol], include_background=True)
    return float(metric(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], spacing=spacing))


@pytest.mark.parametrize("seed,shape,spacing", [
    (0, (40, 36), None), (1, (40, 36), (0.5, 1.25)), (2, (16, 20, 18), (1.0, 1.0, 1.0)),
    (3, (16, 20, 18), (2.0, 0.8, 0.8)),
])
def test_hd95_and_nsd_match_monai(seed, shape, spacing):
    a, b = blobs(seed, shape)
    assert abs(hd95(a, b, spacing=spacing) - monai_hd95(a, b, spacing)) < 1e-6 * max(1.0, monai_hd95(a, b, spacing))
    for tol in (0.5, 1.0, 2.0):
        assert abs(normalized_surface_dice(a, b, tolerance=tol, spacing=spacing) - monai_nsd(a, b, tol, spacing)) < 1e-6


def test_single_pixel_and_touching_edges_match_monai():
    a = np.zeros((20, 20), bool)
    b = a.copy()
    a[0, 0] = True           # at the image border
    b[19, 12:20] = True      # a line on the opposite border
    assert abs(hd95(a, b) - monai_hd95(a, b, None)) < 1e-6
    assert abs(normalized_surface_dice(a, b, tolerance=3.0) - monai_nsd(a, b, 3.0, None)) < 1e-6


def test_identical_masks_are_perfect():
    a, _ = blobs(4, (30, 30))
    assert hd95(a, a) == 0.0
    assert normalized_surface_dice(a, a, tolerance=0.0) == 1.0


def test_empty_conventions():
    empty = np.zeros((10, 20), bool)
    some = empty.copy()
    some[3:5, 3:5] = True
    assert hd95(empty, empty) == 0.0 and normalized_surface_dice(empty, empty) == 1.0
    # prediction empty only, or target empty only: the worst finite distance and no surface overlap
    diag = image_diagonal((10, 20), (2.0, 1.0))
    assert diag == pytest.approx(np.hypot(18.0, 19.0))
    assert hd95(empty, some, spacing=(2.0, 1.0)) == diag and hd95(some, empty, spacing=(2.0, 1.0)) == diag
    assert normalized_surface_dice(empty, some) == 0.0 and normalized_surface_dice(some, empty) == 0.0
    assert not np.isfinite(monai_hd95(empty, some, None))  # MONAI gives nan/inf here: ours is documented


def test_surface_metrics_per_class_with_roi():
    a, b = blobs(6, (2, 32, 32))
    roi = np.ones((32, 32), bool)
    out = surface_metrics(a[None], b[None], spacing=(1.0, 1.0), tolerance=1.0)
    for k in range(2):
        assert float(out["hd95"][0, k]) == pytest.approx(hd95(a[k], b[k]))
        assert float(out["nsd"][0, k]) == pytest.approx(normalized_surface_dice(a[k], b[k], tolerance=1.0))
    roi[:, 16:] = False
    masked = surface_metrics(a[None], b[None], tolerance=1.0, roi=roi[None])
    assert float(masked["hd95"][0, 0]) == pytest.approx(hd95(a[0] & roi, b[0] & roi))
