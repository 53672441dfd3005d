"""Augmentation groups: each composes, and masks/ROI follow geometric transforms exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate
from scipy import ndimage

from medseg.data.augment import Augment2D, Augment3D, RandomFlip


def _blob_case(shape, seed=0):
    """An image whose brightest pixels are exactly the mask: a blurred mask plus a ramp-free background."""
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5
    if not mask.any() or mask.all():
        mask = np.zeros(shape, bool)
        mask[tuple(slice(s // 4, s // 2) for s in shape)] = True
    image = ndimage.gaussian_filter(mask.astype(np.float32), 1.0) + 0.0
    return image[None].astype(np.float32), mask.astype(np.int64), np.ones(shape, bool)


def _topk_dice(image: np.ndarray, mask: np.ndarray) -> float:
    k = int(mask.sum())
    if k == 0:
        return 1.0
    thr = np.sort(image.ravel())[-k]
    top = image >= thr
    return 2 * (top & (mask > 0)).sum() / (top.sum() + k)


def _compose_augment(name: str):
    """The ``data.augment`` object of ``medseg-train augment=<name>``."""
    from hydra import compose, initialize_config_dir

    from medseg.cli._hydra import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"augment={name}"])
    return instantiate(cfg.data.augment, _convert_="partial")


@pytest.mark.parametrize("name", ["flips", "light", "heavy", "randaugment"])
def test_2d_groups_move_mask_with_image(name):
    aug = _compose_augment(name)
    image, mask, roi = _blob_case((48, 48))
    changed = 0
    for i in range(12):
        aug.reseed(i)
        new_image, new_mask, new_roi = aug(image, mask, roi)
        assert new_image.shape == image.shape and new_mask.shape == mask.shape and new_mask.dtype == mask.dtype
        assert set(np.unique(new_mask)) <= {0, 1} and new_roi.dtype == bool
        assert _topk_dice(new_image[0], new_mask) > 0.9  # the bright blob and the label moved together
        changed += not np.array_equal(new_mask, mask)
    assert changed >= 3


def test_multilabel_masks_and_exact_flips():
    aug = Augment2D([__import__("albumentations").HorizontalFlip(p=1.0)], seed=0)
    image, mask, roi = _blob_case((32, 40))
    multi = np.stack([mask, 1 - mask, np.zeros_like(mask)]).astype(np.uint8)
    new_image, new_mask, _ = aug(image, multi, roi)
    np.testing.assert_array_equal(new_mask, multi[:, :, ::-1])
    np.testing.assert_array_equal(new_image, image[:, :, ::-1])
    with pytest.raises(ValueError, match="2D images"):
        aug(np.zeros((1, 8, 8, 8), np.float32), None, None)


@pytest.mark.parametrize("shape", [(24, 28), (16, 20, 12)])
def test_random_flip_exact_in_2d_and_3d(shape):
    from itertools import combinations

    image, mask, _ = _blob_case(shape)
    roi = np.random.default_rng(1).random(shape) > 0.5
    aug = RandomFlip(p=0.5, seed=3)
    subsets = [c for r in range(len(shape) + 1) for c in combinations(range(len(shape)), r)]
    seen = set()
    for _ in range(24):
        new_image, new_mask, new_roi = aug(image, mask, roi)
        match = [axes for axes in subsets if np.array_equal(new_image[0], np.flip(image[0], axes))
                 and np.array_equal(new_mask, np.flip(mask, axes)) and np.array_equal(new_roi, np.flip(roi, axes))]
        assert match, "image, mask and roi were not flipped along the same axes"
        seen.add(match[0])
    assert len(seen) >= 3


def test_monai3d_group_moves_mask_with_image():
    aug = _compose_augment("monai3d")
    assert isinstance(aug, Augment3D)
    image, mask, roi = _blob_case((24, 24, 20))
    multi = np.stack([mask, mask]).astype(np.uint8)
    changed = 0
    for i in range(6):
        aug.reseed(i)
        new_image, new_mask, new_roi = aug(image, multi, roi)
        assert new_mask.shape == multi.shape and new_mask.dtype == np.uint8 and new_roi.shape == roi.shape
        np.testing.assert_array_equal(new_mask[0], new_mask[1])
        assert _topk_dice(new_image[0], new_mask[0]) > 0.9
        changed += not np.array_equal(new_mask, multi)
    assert changed >= 2
    # integer (multi-class) masks come back without a channel axis
    _, m, _ = aug(image, mask, None)
    assert m.shape == mask.shape and m.dtype == mask.dtype


def test_reseed_reproduces():
    aug = _compose_augment("heavy")
    image, mask, roi = _blob_case((40, 40))
    aug.reseed(11)
    a = aug(image, mask, roi)
    aug.reseed(11)
    b = aug(image, mask, roi)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
