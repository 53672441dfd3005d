"""The training stream is a pure function of (seed, epoch, index): shuffle, patches and augmentation."""

from __future__ import annotations

import numpy as np
import torch

from medseg.data.augment import RandomFlip
from medseg.data.case import Case
from medseg.data.datasets import PatchDataset
from medseg.data.samplers import EpochSampler


def _cases(n=3):
    rng = np.random.default_rng(0)
    return [Case(case_id=f"c{i}", image=rng.random((1, 24, 24), dtype=np.float32),
                 mask=(rng.random((24, 24)) > 0.7).astype(np.uint8)) for i in range(n)]


def test_epoch_sampler_order_depends_on_seed_and_epoch_only():
    ds = list(range(20))
    a, b = EpochSampler(ds, seed=5), EpochSampler(ds, seed=5)
    a.set_epoch(3)
    list(a)  # consuming one pass changes nothing for the next
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)
    a.skip_next(8, epoch=3)
    assert list(a) == list(EpochSampler(ds, seed=5, epoch=3))[8:]
    assert len(list(a)) == 20  # the skip is for one pass only


def test_patches_and_augmentation_reproduce_after_a_restart():
    ds1 = PatchDataset(_cases(), (16, 16), 10, augment=RandomFlip(seed=1), seed=2)
    ds2 = PatchDataset(_cases(), (16, 16), 10, augment=RandomFlip(seed=1), seed=2)
    for i in range(10):  # ds1 has drawn many augmentations already; ds2 is fresh (a resumed run)
        ds1[i]
    ds1.set_epoch(2)
    ds2.set_epoch(2)
    for i in (7, 3, 9):
        assert torch.equal(ds1[i]["image"], ds2[i]["image"]) and torch.equal(ds1[i]["mask"], ds2[i]["mask"])
