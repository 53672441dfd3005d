"""BraTS through the DataModule: .npy cache, lazy memory-mapped cases, one 3D training epoch."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest

import medseg.data.formats.brats as brats_format
from medseg.data.case import DataError
from medseg.data.datamodule import SegmentationDataModule
from medseg.data.formats.brats import BratsReader
from medseg.data.preprocess import CropToForeground, ZScore, uncrop
from medseg.data.synth.brats import write_brats


@pytest.fixture(scope="module")
def brats_root(tmp_path_factory):
    return write_brats(tmp_path_factory.mktemp("b") / "BraTS2020", n_cases=5, shape=(36, 40, 28), seed=1)


def _dm(root, cache, lazy=True, **kw):
    return SegmentationDataModule(
        root=str(root), reader=functools.partial(BratsReader), patch_size=(16, 16, 16),
        preprocess=[CropToForeground(margin=1), ZScore(within_roi=True)], samples_per_epoch=4,
        batch_size=2, cache_dir=str(cache) if cache else None, lazy=lazy, max_centres=500, **kw)


def test_cache_serves_epochs_and_runs_without_nifti(brats_root, tmp_path, monkeypatch):
    dm = _dm(brats_root, tmp_path / "cache")
    dm.setup()
    assert dm.spatial_dims == 3 and dm.in_channels == 4 and dm.task == "multilabel"
    first = dm.cases["train"][0]
    assert isinstance(first.image, np.memmap)  # lazy: on disk, not in memory
    # the crop box and the source affine survive the cache; uncrop restores the source grid
    raw = dm.raw_case(first.case_id)
    np.testing.assert_array_equal(uncrop(np.asarray(first.mask), first.meta), raw.mask)
    np.testing.assert_allclose(first.meta["affine"], raw.meta["affine"])
    # brain z-score: zero mean, unit std inside the ROI (the brain)
    img = np.asarray(first.image)
    assert abs(img[0][first.roi].mean()) < 1e-3 and abs(img[0][first.roi].std() - 1) < 1e-2

    def no_nifti(path):
        raise AssertionError(f"read {path} although it is cached")

    monkeypatch.setattr(brats_format, "load_nifti", no_nifti)
    dm2 = _dm(brats_root, tmp_path / "cache")
    dm2.setup()  # listing still reads folders; no NIfTI is opened
    batch = next(iter(dm2.train_dataloader()))
    assert batch["image"].shape == (2, 4, 16, 16, 16) and batch["mask"].shape == (2, 3, 16, 16, 16)
    np.testing.assert_array_equal(np.asarray(dm2.cases["train"][0].image), img)


def test_cache_key_changes_with_preprocessing(brats_root, tmp_path):
    a, b = _dm(brats_root, tmp_path / "c"), _dm(brats_root, tmp_path / "c")
    b.preprocess.steps[1] = ZScore(within_roi=False)
    a.setup()
    b.setup()
    dirs = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(dirs) == 2
    assert not np.allclose(np.asarray(a.cases["train"][0].image), np.asarray(b.cases["train"][0].image))


def test_lazy_needs_cache(brats_root):
    with pytest.raises(ValueError, match="cache_dir"):
        _dm(brats_root, None, lazy=True)


def test_patches_oversample_tumour(brats_root, tmp_path):
    dm = _dm(brats_root, tmp_path / "c", foreground_fraction=1.0)
    dm.setup()
    ds = dm.train_dataset()
    hits = [ds[i]["mask"][0].any().item() for i in range(len(ds))]
    assert all(hits)


def test_train_one_epoch_brats_synth(train_synth, tmp_path):
    results, run_dir = train_synth("brats", "data.synthesize.shape=[36,40,28]", "data.synthesize.n_cases=5",
                                   "data.patch_size=[16,16,16]", "data.samples_per_epoch=4", "data.batch_size=2",
                                   "model.depth=2", "model.base_channels=4")
    assert (tmp_path / "data" / "synthetic" / "BraTS2020" / "MICCAI_BraTS2020_TrainingData").is_dir()
    # multi-label: no test AUC is computed, and no Dice floor was calibrated here: a finite score only
    assert math.isfinite(results["test/dice"]), results
    assert (run_dir / "per_image.csv").exists() and (run_dir / "splits.json").exists()


def test_lazy_dataset_pickles_without_arrays(brats_root, tmp_path):
    """A DataLoader worker started by ``spawn`` receives folder names, not volumes."""
    import pickle

    dm = _dm(brats_root, tmp_path / "c")
    dm.setup()
    ds = dm.train_dataset()
    volume_bytes = sum(np.asarray(c.image).nbytes for c in dm.cases["train"])
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < volume_bytes / 10
    np.testing.assert_array_equal(clone[3]["image"].numpy(), ds[3]["image"].numpy())


def test_cached_setup_skips_bad_case_when_lenient(brats_root, tmp_path):
    import shutil

    root = Path(shutil.copytree(brats_root, tmp_path / "BraTS2020"))
    probe = _dm(root, tmp_path / "c0")
    probe.setup()
    victim = probe.splits["train"][0]  # a training case, so no split ends up empty
    (root / "MICCAI_BraTS2020_TrainingData" / victim / f"{victim}_t2.nii.gz").unlink()
    strict = _dm(root, tmp_path / "c1")
    with pytest.raises(DataError, match=f"{victim} has no t2"):
        strict.setup()
    lenient = _dm(root, tmp_path / "c2")
    lenient.reader_factory = functools.partial(BratsReader, strict=False)
    with pytest.warns(UserWarning, match=f"skipping case {victim}"):
        lenient.setup()
    cached = [c.case_id for split in lenient.cases.values() for c in split]
    assert victim in lenient.splits["train"] and victim not in cached and len(cached) == 4
