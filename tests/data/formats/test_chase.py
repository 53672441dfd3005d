"""CHASE_DB1 reader: flat layout, derived FOV, subject split and grouping, bad labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.data.case import DataError
from medseg.data.formats.chase import ChaseReader
from medseg.data.splits import make_splits
from medseg.data.synth.chase import write_chase
from medseg.data.synth.fundus import make_fundus
from tests.conftest import SMOKE_LR, assert_beats_constant

H, W = 64, 66


@pytest.fixture(scope="module")
def tiny_chase(tmp_path_factory) -> Path:
    return write_chase(tmp_path_factory.mktemp("chase") / "CHASE_DB1", n_subjects=4, height=H, width=W, seed=2)


def test_round_trip(tiny_chase):
    reader = ChaseReader(tiny_chase, train_subjects=[1, 2, 3])
    assert reader.list_cases("training") == ["Image_01L", "Image_01R", "Image_02L", "Image_02R", "Image_03L", "Image_03R"]
    assert reader.list_cases("test") == ["Image_04L", "Image_04R"]
    sample = make_fundus(np.random.default_rng((2, 3)), H, W)  # subject 02, right eye
    case = reader.load_case("Image_02R")
    assert case.image.shape == (3, H, W)
    np.testing.assert_array_equal(case.mask, sample.vessels)
    # JPEG is lossy: close to the generated image (much closer than to another eye's), not equal
    err = np.abs(case.image.transpose(1, 2, 0) * 255 - sample.image).mean()
    other = make_fundus(np.random.default_rng((2, 2)), H, W).image
    assert err < 6 and err < np.abs(case.image.transpose(1, 2, 0) * 255 - other).mean()
    # the FOV is derived from the image and matches the generator's disc
    fov = sample.fov.astype(bool)
    assert (case.roi & fov).sum() / (case.roi | fov).sum() > 0.9
    second = ChaseReader(tiny_chase, annotator=2).load_case("Image_02R")
    assert second.mask.sum() <= case.mask.sum() and (second.mask & ~case.mask).sum() == 0


def test_subjects_stay_together(tiny_chase):
    reader = ChaseReader(tiny_chase)
    assert reader.group_of("Image_03L") == reader.group_of("Image_03R") == "03"
    ids = reader.list_cases("all")
    splits = make_splits(ids, None, val_fraction=0.3, test_fraction=0.3, seed=0, fold=0, n_folds=2,
                         group_of=reader.group_of)
    for a in ("train", "val", "test"):
        for b in ("train", "val", "test"):
            if a < b:
                assert not {reader.group_of(c) for c in splits[a]} & {reader.group_of(c) for c in splits[b]}


def test_bad_files(tiny_chase, tmp_path):
    root = Path(shutil.copytree(tiny_chase, tmp_path / "c"))
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "Image_01L_1stHO.png")
    with pytest.raises(DataError, match=r"Image_01L_1stHO\.png: size \(10, 10\) differs"):
        ChaseReader(root).load_case("Image_01L")
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(root / "Image_01R_1stHO.png")
    with pytest.raises(DataError, match="expected a binary"):
        ChaseReader(root).load_case("Image_01R")
    (root / "Image_02L.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match=r"Image_02L\.jpg: cannot read image"):
        ChaseReader(root).load_case("Image_02L")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no CHASE_DB1 images"):
        ChaseReader(tmp_path / "empty")


def test_train_one_epoch_chase_synth(train_synth):
    results, run_dir = train_synth("chase", "data.synthesize.n_subjects=4", "data.synthesize.height=64",
                                   "data.synthesize.width=64", "data.reader.train_subjects=[1,2,3]",
                                   "data.fold=1", "data.n_folds=3", SMOKE_LR)
    assert_beats_constant(results, 0.63)  # measured 0.710
    splits = __import__("json").loads((run_dir / "splits.json").read_text())
    assert splits["test"] == ["Image_04L", "Image_04R"]  # the subject split, not a random one
