"""BraTS of every year from the file names: 2013/2015, 2018-2021, 2023+; background rules; smoke epochs."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from medseg.data.formats.brats import BratsReader, border_background, detect_scheme
from medseg.data.synth.brats import write_brats
from medseg.errors import DataError

SHAPE = (24, 24, 16)


@pytest.fixture(scope="module")
def years(tmp_path_factory):
    base = tmp_path_factory.mktemp("years")
    return {y: write_brats(base / f"BraTS{y}", n_cases=3, shape=SHAPE, seed=3, year=y,
                           validation_cases=0 if y == 2013 else 1) for y in (2013, 2020, 2021, 2023)}


def test_every_year_reads_the_same_cases(years):
    ref = BratsReader(years[2020]).load_case("BraTS20_Training_001")
    expected = {2013: ("brats_2013_pat0001_1", "BraTS 2013/2015"), 2021: ("BraTS2021_00000", "BraTS 2018-2021"),
                2023: ("BraTS-GLI-00000-000", "BraTS 2023+")}
    for year, (cid, naming) in expected.items():
        reader = BratsReader(years[year])
        assert cid in reader.list_cases("training")
        case = reader.load_case(cid)
        assert case.meta["naming"] == naming
        np.testing.assert_array_equal(case.mask, ref.mask)  # 2023's label 3 is read as enhancing tumour
        np.testing.assert_array_equal(case.roi, ref.roi)    # the brain, whatever the background value
        assert case.mask[2].any()
    assert BratsReader(years[2021]).available_splits() == ["training", "validation"]
    assert BratsReader(years[2023]).group_of("BraTS-GLI-00001-002") == "BraTS-GLI-00001"


def test_brats2013_layout_with_exact_names(years, tmp_path):
    """brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz, T1c_..., OTMultiClass.nii.gz, brainmask.nii.gz: the
    volumes are z-scored (background about -3.5, not 0) and the brain mask file is used."""
    root = years[2013]
    names = sorted(p.name for p in (root / "brats_2013_pat0001_1").iterdir())
    assert names == ["Flair_subtrMeanDivStd.nii.gz", "OTMultiClass.nii.gz", "T1_subtrMeanDivStd.nii.gz",
                     "T1c_subtrMeanDivStd.nii.gz", "T2_subtrMeanDivStd.nii.gz", "brainmask.nii.gz"]
    case = BratsReader(root).load_case("brats_2013_pat0001_1")
    assert case.meta["background_rule"] == "brain mask file brainmask.nii.gz"
    assert case.image[0][~case.roi].max() < -0.5  # a non-zero background
    # without the mask file: the most frequent border value, and the reader says so
    copy = shutil.copytree(root, tmp_path / "nomask")
    for p in copy.glob("*/brainmask.nii.gz"):
        p.unlink()
    case2 = BratsReader(copy).load_case("brats_2013_pat0001_1")
    assert case2.meta["background_rule"].startswith("most frequent border value (-")
    np.testing.assert_array_equal(case2.roi, case.roi)
    # crop-to-brain works on this background (the old zero rule cropped nothing)
    from medseg.data.preprocess import CropToForeground

    cropped = CropToForeground(margin=0)(case2)
    assert all(c < s for c, s in zip(cropped.spatial_shape, SHAPE))


def test_brats2015_mha_sub_folders(years, tmp_path):
    """BraTS 2015: brats_2013_pat0001_1/VSD.Brain.XX.O.MR_Flair.54512/VSD.Brain.XX.O.MR_Flair.54512.mha, ..."""
    import SimpleITK as sitk

    src = years[2013] / "brats_2013_pat0001_1"
    case_dir = tmp_path / "BRATS2015_Training" / "HGG" / "brats_2013_pat0001_1"
    names = {"Flair_subtrMeanDivStd": "MR_Flair", "T1_subtrMeanDivStd": "MR_T1", "T1c_subtrMeanDivStd": "MR_T1c",
             "T2_subtrMeanDivStd": "MR_T2", "OTMultiClass": "OT"}
    for k, (old, new) in enumerate(names.items()):
        arr = np.asarray(nib.load(str(src / f"{old}.nii.gz")).dataobj)
        name = f"VSD.Brain{'_3more' if new == 'OT' else ''}.XX.O.{new}.{54512 + k}"
        (case_dir / name).mkdir(parents=True)
        sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(arr.T)), str(case_dir / name / f"{name}.mha"))
    reader = BratsReader(tmp_path)
    assert reader.list_cases("training") == ["brats_2013_pat0001_1"]
    case = reader.load_case("brats_2013_pat0001_1")
    ref = BratsReader(years[2013]).load_case("brats_2013_pat0001_1")
    np.testing.assert_array_equal(case.mask, ref.mask)
    np.testing.assert_allclose(case.image, ref.image, atol=1e-6)
    assert case.meta["background_rule"].startswith("most frequent border value")  # no brain mask in 2015


def test_scheme_detection_and_patterns(years, tmp_path):
    from pathlib import Path

    assert detect_scheme([Path("VSD.Brain.XX.O.MR_Flair.54512.mha"), Path("VSD.Brain_3more.XX.O.OT.54517.mha")]) == "2013"
    assert detect_scheme([Path("BraTS-MEN-00004-000-t2w.nii.gz")]) == "2023"
    assert detect_scheme([Path("BraTS20_Training_001_t1ce.nii.gz")]) == "2018"
    # a renamed layout: patterns override the detected names
    copy = shutil.copytree(years[2020], tmp_path / "renamed")
    d = copy / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_001"
    (d / "BraTS20_Training_001_seg.nii.gz").rename(d / "BraTS20_Training_001_labels.nii.gz")
    with pytest.raises(DataError, match="has no segmentation.*data.reader.patterns.seg"):
        BratsReader(copy).load_case("BraTS20_Training_001")
    case = BratsReader(copy, patterns={"seg": r"_labels\."}).load_case("BraTS20_Training_001")
    assert case.mask.any()
    vol = np.zeros((4, 4, 4), np.float32) - 3.5
    vol[1:3, 1:3, 1:3] = 2
    assert border_background(vol) == -3.5


def test_bad_2023_case_names_the_file(years, tmp_path):
    copy = shutil.copytree(years[2023], tmp_path / "bad")
    case_dir = next(copy.glob("*Training*/BraTS-GLI-00001-000"))
    (case_dir / "BraTS-GLI-00001-000-t1c.nii.gz").unlink()
    with pytest.raises(DataError, match=r"BraTS-GLI-00001-000 has no t1ce volume \(BraTS 2023\+ naming: .*'t1c'"):
        BratsReader(copy).load_case("BraTS-GLI-00001-000")
    seg = case_dir / "BraTS-GLI-00001-000-seg.nii.gz"
    img = nib.load(str(seg))
    nib.save(nib.Nifti1Image(np.where(np.asarray(img.dataobj) == 2, 4, np.asarray(img.dataobj)).astype(np.uint8),
                             img.affine), str(seg))
    with pytest.raises(DataError, match=r"-seg\.nii\.gz: label values \[4\] outside the BraTS 2023 class map"):
        BratsReader(copy, modalities=["flair"]).load_case("BraTS-GLI-00001-000")


def test_two_cases_without_splits_points_to_data_splits(tmp_path):
    from medseg.data.datamodule import SegmentationDataModule

    root = write_brats(tmp_path / "b13", n_cases=2, shape=SHAPE, seed=1, year=2013)
    dm = SegmentationDataModule(root=str(root), reader=BratsReader, patch_size=(16, 16, 16), test_split=None)
    with pytest.raises(DataError, match=r"cannot split the 2 case\(s\).*data.splits="):
        dm.setup()


@pytest.mark.parametrize("year", [2013, pytest.param(2021, marks=pytest.mark.slow), 2023])
def test_smoke_epoch_per_year(train_synth, year):
    results, run_dir = train_synth("brats", f"data.synthesize.year={year}", "data.synthesize.shape=[24,24,16]",
                                   "data.synthesize.n_cases=4", "data.patch_size=[16,16,16]",
                                   "data.samples_per_epoch=4", "data.batch_size=2", "model.depth=2",
                                   "model.base_channels=4", "data.cache_dir=null", "data.lazy=false")
    assert np.isfinite(results["test/dice"]) and (run_dir / "splits.json").is_file()


def test_bad_2013_and_2021_variants_name_the_file(years, tmp_path):
    copy = shutil.copytree(years[2013], tmp_path / "b13")
    mask = copy / "brats_2013_pat0002_1" / "brainmask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), str(mask))
    with pytest.raises(DataError, match=r"pat0002_1/brainmask\.nii\.gz: brain mask shape \(4, 4, 4\) differs"):
        BratsReader(copy).load_case("brats_2013_pat0002_1")
    copy = shutil.copytree(years[2021], tmp_path / "b21")
    (copy / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz").unlink()
    with pytest.raises(DataError, match=r"BraTS2021_00001: training case BraTS2021_00001 has no segmentation"):
        BratsReader(copy).load_case("BraTS2021_00001")
