"""Preprocessing steps and predecessor project 003's pipeline expressed as a config."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.data.case import Case
from medseg.data.preprocess import (
    CLAHE,
    ClipIntensity,
    CropToForeground,
    Gamma,
    GreenWeightedGray,
    MinMax,
    Resize,
    ZScore,
    uncrop,
)
from tests.conftest import SMOKE_LR, assert_beats_constant


def test_seed003_pipeline_composes_and_runs(train_cfg, tiny_drive):
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.train import train

    cfg, run_dir = train_cfg(["data=drive_chained", f"data.root={tiny_drive}", "debug=smoke",
                              "data.patch_size=[48,48]", "data.samples_per_epoch=8", SMOKE_LR])
    steps = [s["_target_"].rsplit(".", 1)[1] for s in cfg.data.preprocess]
    assert steps == ["GreenWeightedGray", "ZScore", "MinMax", "CLAHE", "Gamma"]
    dm = build_datamodule(cfg)
    case = dm.cases["train"][0]
    assert case.image.shape[0] == 1 and 0.0 <= case.image.min() and case.image.max() <= 1.0
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1:] == (1, 48, 48)
    assert_beats_constant(train(cfg, run_dir), 0.6)  # measured: 0.669


def test_steps_in_order_match_hand_computation():
    rng = np.random.default_rng(0)
    rgb = rng.random((3, 20, 24)).astype(np.float32)
    case = Case("c", rgb, roi=np.ones((20, 24), bool))
    gray = GreenWeightedGray()(case)
    np.testing.assert_allclose(gray.image[0], 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2], rtol=1e-5)
    z = ZScore()(gray)
    assert abs(z.image.mean()) < 1e-5 and abs(z.image.std() - 1) < 1e-3
    mm = MinMax()(z)
    assert mm.image.min() == 0.0 and abs(mm.image.max() - 1.0) < 1e-4
    g = Gamma(2.0)(mm)
    np.testing.assert_allclose(g.image, mm.image**2, rtol=1e-5)
    c = CLAHE()(mm)
    assert c.image.shape == mm.image.shape and not np.allclose(c.image, mm.image)


def test_crop_to_foreground_and_uncrop():
    image = np.zeros((2, 10, 12, 8), np.float32)
    image[1, 2:7, 3:9, 1:5] = 1.0
    mask = (image[1] > 0).astype(np.uint8)
    case = CropToForeground(margin=1)(Case("v", image, mask=mask))
    assert case.image.shape == (2, 7, 8, 6) and case.meta["crop_bbox"] == [[1, 8], [2, 10], [0, 6]]
    assert case.roi.sum() == mask.sum()
    np.testing.assert_array_equal(uncrop(case.mask, case.meta), mask)


def test_z_score_nonzero_keeps_background():
    image = np.zeros((1, 8, 8), np.float32)
    image[0, 2:6, 2:6] = np.arange(16).reshape(4, 4) + 10
    out = ZScore(within_roi=False, nonzero=True)(Case("c", image)).image[0]
    assert (out[image[0] == 0] == 0).all()
    assert abs(out[image[0] > 0].mean()) < 1e-5


def test_z_score_with_dataset_statistics_and_clipping():
    image = np.array([[[-1000.0, 0.0], [40.0, 3000.0]]], np.float32)
    clipped = ClipIntensity(low=-100, high=200)(Case("c", image)).image
    np.testing.assert_array_equal(clipped, [[[-100.0, 0.0], [40.0, 200.0]]])
    out = ZScore(within_roi=False, mean=50.0, std=25.0)(Case("c", clipped)).image
    np.testing.assert_allclose(out, (clipped - 50.0) / (25.0 + 1e-6), rtol=1e-6)  # not the image's own mean
    two = np.stack([image[0], image[0] * 2])
    per_channel = ClipIntensity(low=[-10, -20], high=[10, 100])(Case("c", two)).image
    assert per_channel[0].min() == -10 and per_channel[0].max() == 10 and per_channel[1].max() == 100
    assert ClipIntensity(high=0)(Case("c", image)).image.max() == 0 and ClipIntensity(high=0).low is None
    with pytest.raises(ValueError, match="both mean and std"):
        ZScore(mean=1.0)
    with pytest.raises(ValueError, match=r"one value or one per channel \(2\)"):
        ZScore(mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0])(Case("c", two))
    with pytest.raises(ValueError, match="low .* above high"):
        ClipIntensity(low=5, high=1)(Case("c", image))


def test_resize_nearest_for_labels():
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 2
    case = Resize([16, 4])(Case("c", np.ones((1, 8, 8), np.float32), mask=mask, roi=mask > 0))
    assert case.image.shape == (1, 16, 4) and set(np.unique(case.mask)) == {0, 2}
    assert (case.mask[:8] == 2).all() and (case.mask[8:] == 0).all() and case.roi.dtype == bool
    with pytest.raises(ValueError, match="does not match"):
        Resize([4, 4, 4])(case)


def test_resample_max_size_and_spacing():
    from medseg.data.case import Case
    from medseg.data.preprocess import Resample

    img = np.random.default_rng(0).random((1, 40, 20)).astype(np.float32)
    mask = np.zeros((40, 20), np.uint8)
    mask[10:30, 5:15] = 1
    out = Resample(max_size=20)(Case("a", img, mask=mask))
    assert out.spatial_shape == (20, 10) and out.meta["resampled_from"] == [40, 20]
    assert set(np.unique(out.mask)) == {0, 1} and abs(out.mask.mean() - mask.mean()) < 0.02
    vol = Case("v", np.zeros((1, 10, 10, 4), np.float32), spacing=(1.0, 1.0, 5.0))
    r = Resample(spacing=(2.0, 2.0, 2.0))(vol)
    assert r.spatial_shape == (5, 5, 10) and r.spacing == (2.0, 2.0, 2.0)
    assert Resample(max_size=64)(Case("b", img)).spatial_shape == (40, 20)  # small enough: unchanged


def test_field_of_view_only_where_the_reader_has_none():
    from medseg.data.case import Case
    from medseg.data.preprocess import FieldOfView

    yy, xx = np.mgrid[0:40, 0:40]
    disc = (np.hypot(yy - 20, xx - 20) < 15).astype(np.float32)
    img = np.stack([disc * 0.8, disc * 0.5, disc * 0.1])
    roi = FieldOfView()(Case("f", img)).roi
    assert roi[20, 20] and not roi[0, 0] and abs(roi.mean() - disc.mean()) < 0.05
    given = np.ones((40, 40), bool)
    assert FieldOfView()(Case("g", img, roi=given)).roi is given


@pytest.mark.parametrize("margin", [0, 2, 7])
def test_foreground_box_is_the_hand_computed_box(margin):
    """CropToForeground's box (MONAI's CropForeground) equals the per-axis extent plus margin, clipped."""
    from medseg.data.preprocess import foreground_box

    rng = np.random.default_rng(margin)
    for shape in [(20, 17), (9, 12, 10)]:
        nonzero = np.zeros(shape, bool)
        idx = tuple(rng.integers(0, s, 3) for s in shape)
        nonzero[idx] = True
        expected = []
        for ax in range(len(shape)):
            hit = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(len(shape)) if a != ax)))
            expected.append((max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, shape[ax])))
        assert foreground_box(nonzero, margin) == expected
