"""Patch sampling, augmentation alignment and preprocessing on the shared Case convention."""

import numpy as np
import pytest

from medseg.data.augment import Augment2D
from medseg.data.case import Case, DataError
from medseg.data.datasets import FullImageDataset, PatchDataset, ResizeDataset
from medseg.data.preprocess import CLAHE, Gamma, GreenWeightedGray, MinMax, ZScore


def _case(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.random((3, h, w), dtype=np.float32)
    mask = (rng.random((h, w)) > 0.9).astype(np.uint8)
    roi = np.zeros((h, w), bool)
    roi[5:-5, 5:-5] = True
    return Case("c", image, mask, roi)


def test_patch_dataset_shapes_and_reproducibility():
    ds = PatchDataset([_case()], (16, 16), samples_per_epoch=10, seed=1)
    a, b = ds[3], ds[3]
    assert a["image"].shape == (3, 16, 16) and a["mask"].shape == (16, 16) and a["roi"].shape == (16, 16)
    assert np.array_equal(a["image"].numpy(), b["image"].numpy())
    ds.set_epoch(1)
    assert not np.array_equal(ds[3]["image"].numpy(), a["image"].numpy())


def test_patch_dataset_patch_matches_source_crop():
    case = _case()
    ds = PatchDataset([case], (16, 16), samples_per_epoch=5, seed=0)
    item = ds[0]
    img = item["image"].numpy()
    # locate the patch in the source image: it must be an exact crop, with the mask crop aligned
    for y in range(case.image.shape[1] - 15):
        for x in range(case.image.shape[2] - 15):
            if np.array_equal(case.image[:, y:y + 16, x:x + 16], img):
                assert np.array_equal(case.mask[y:y + 16, x:x + 16], item["mask"].numpy())
                return
    pytest.fail("patch is not a crop of the source image")


def test_patch_smaller_image_is_padded():
    ds = PatchDataset([_case(10, 12)], (16, 16), samples_per_epoch=2)
    assert ds[0]["image"].shape == (3, 16, 16)


def test_foreground_oversampling():
    case = _case()
    case.mask[:] = 0
    case.mask[20, 25] = 1
    ds = PatchDataset([case], (8, 8), samples_per_epoch=200, foreground_fraction=1.0)
    assert all(ds[i]["mask"].sum() == 1 for i in range(50))


def test_augment_moves_mask_and_roi_with_image():
    import albumentations as A

    case = _case()
    aug = Augment2D([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)], seed=0)
    image, mask, roi = aug(case.image, case.mask, case.roi)
    np.testing.assert_array_equal(image, case.image[:, ::-1, ::-1])
    np.testing.assert_array_equal(mask, case.mask[::-1, ::-1])
    np.testing.assert_array_equal(roi, case.roi[::-1, ::-1])
    multi = np.stack([case.mask, 1 - case.mask]).astype(np.uint8)
    _, m2, _ = aug(case.image, multi, None)
    np.testing.assert_array_equal(m2, multi[:, ::-1, ::-1])


def test_resize_and_full_datasets():
    case = _case()
    r = ResizeDataset([case], (32, 32))[0]
    assert r["image"].shape == (3, 32, 32) and set(np.unique(r["mask"].numpy())) <= {0, 1}
    f = FullImageDataset([case])[0]
    assert f["image"].shape == (3, 40, 50) and f["case_id"] == "c"


def test_preprocess_steps():
    case = _case()
    gray = GreenWeightedGray()(case)
    assert gray.image.shape == (1, 40, 50)
    np.testing.assert_allclose(gray.image[0], 0.299 * case.image[0] + 0.587 * case.image[1] + 0.114 * case.image[2],
                               rtol=1e-5)
    z = ZScore()(gray)
    inside = z.image[0][case.roi]
    assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1) < 1e-3 and (z.image[0][~case.roi] == 0).all()
    mm = MinMax()(z)
    assert mm.image.min() >= 0 and mm.image.max() <= 1 and mm.image[0][case.roi].max() == pytest.approx(1, abs=1e-5)
    cl = CLAHE()(mm)
    assert cl.image.shape == mm.image.shape and 0 <= cl.image.min() and cl.image.max() <= 1
    g = Gamma(2.0)(mm)
    np.testing.assert_allclose(g.image, mm.image**2, rtol=1e-5)


def test_case_validation_rejects_nan_and_shape_mismatch():
    case = _case()
    case.image[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="c: image contains NaN"):
        case.validate()
    with pytest.raises(DataError, match="mask shape"):
        Case("x", np.zeros((1, 4, 4), np.float32), np.zeros((5, 4), np.uint8)).validate()
