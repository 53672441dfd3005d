"""BraTS 2020 reader: round trip with the generator, label modes, modality subsets and real-world quirks."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.data.case import DataError
from medseg.data.formats.brats import BratsReader, regions_from_labels
from medseg.data.synth.brats import TRAIN_DIR, brats_affine, make_head, write_brats

SHAPE = (40, 44, 28)


@pytest.fixture(scope="module")
def tiny_brats(tmp_path_factory) -> Path:
    return write_brats(tmp_path_factory.mktemp("brats") / "BraTS2020", n_cases=3, shape=SHAPE, seed=5,
                       tumour_centers=[(20, 22, 14)], validation_cases=1)


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "BraTS2020"))


def _case_dir(root: Path, cid: str = "BraTS20_Training_001") -> Path:
    return root / TRAIN_DIR / cid


def test_round_trip_same_arrays(tiny_brats):
    reader = BratsReader(tiny_brats)
    assert reader.available_splits() == ["training", "validation"]
    assert reader.list_cases("training") == [f"BraTS20_Training_00{i}" for i in (1, 2, 3)]
    vols, seg, brain = make_head(np.random.default_rng((5, 0)), SHAPE, (20, 22, 14))
    case = reader.load_case("BraTS20_Training_001")
    assert case.image.shape == (4,) + SHAPE and case.image.dtype == np.float32
    for c, mod in enumerate(("flair", "t1", "t1ce", "t2")):
        np.testing.assert_array_equal(case.image[c], np.round(vols[mod]).astype(np.int16))
    np.testing.assert_array_equal(case.mask, regions_from_labels(seg))
    assert reader.task == "multilabel" and len(reader.class_names) == 3
    np.testing.assert_allclose(case.meta["affine"], brats_affine(SHAPE))
    assert case.spacing == (1.0, 1.0, 1.0)
    # the synthetic head is skull-stripped: zero outside the brain, and the tumour sits inside it
    assert (case.image[:, ~brain] == 0).all() and brain[seg > 0].all()


def test_tumour_is_nested_and_placed(tiny_brats):
    case = BratsReader(tiny_brats).load_case("BraTS20_Training_001")
    wt, tc, et = case.mask.astype(bool)
    assert et.any() and tc.any()
    assert not (et & ~tc).any() and not (tc & ~wt).any()
    assert wt[20, 22, 14]


def test_modalities_differ_in_tumour_contrast(tiny_brats):
    """Oedema is bright on FLAIR relative to white matter; enhancement shows on T1ce only."""
    case = BratsReader(tiny_brats).load_case("BraTS20_Training_002")
    seg = nib.load(str(_case_dir(tiny_brats, "BraTS20_Training_002") / "BraTS20_Training_002_seg.nii.gz"))
    seg = np.asarray(seg.dataobj)
    flair, t1, t1ce, _ = case.image
    brain = flair > 0
    healthy = brain & (seg == 0)
    assert flair[seg == 2].mean() > 1.5 * np.median(flair[healthy])
    ratio_ce = t1ce[seg == 4].mean() / np.median(t1ce[healthy])
    ratio_t1 = t1[seg == 4].mean() / np.median(t1[healthy])
    assert ratio_ce > 1.2 * ratio_t1


def test_labels_mode_and_modality_subset(tiny_brats):
    reader = BratsReader(tiny_brats, modalities=["t1ce", "flair"], label_mode="labels")
    full = BratsReader(tiny_brats).load_case("BraTS20_Training_001")
    case = reader.load_case("BraTS20_Training_001")
    assert reader.task == "multiclass" and reader.in_channels == 2
    np.testing.assert_array_equal(case.image, full.image[[2, 0]])
    seg = np.asarray(nib.load(str(_case_dir(tiny_brats) / "BraTS20_Training_001_seg.nii.gz")).dataobj)
    assert set(np.unique(case.mask)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(case.mask == 3, seg == 4)
    np.testing.assert_array_equal(case.mask == 1, seg == 1)
    with pytest.raises(ValueError, match="modalities"):
        BratsReader(tiny_brats, modalities=["dwi"])


def test_validation_split_has_no_labels(tiny_brats):
    reader = BratsReader(tiny_brats)
    assert not reader.has_labels("validation") and reader.has_labels("training")
    assert reader.load_case("BraTS20_Validation_001").mask is None


@pytest.mark.parametrize("new_name", ["BraTS20_Training_001_seg.nii", "BraTS20_Training_001_Segm.nii.gz",
                                      "BraTS20_Training_001_SEG.nii.gz"])
def test_seg_file_name_variants(tiny_brats, tmp_path, new_name):
    root = _copy(tiny_brats, tmp_path)
    d = _case_dir(root)
    src = d / "BraTS20_Training_001_seg.nii.gz"
    if new_name.endswith(".nii"):
        (d / new_name).write_bytes(gzip.decompress(src.read_bytes()))
    else:
        shutil.copy(src, d / new_name)
    src.unlink()
    case = BratsReader(root).load_case("BraTS20_Training_001")
    np.testing.assert_array_equal(case.mask, BratsReader(tiny_brats).load_case("BraTS20_Training_001").mask)


def test_missing_modality_names_the_case(tiny_brats, tmp_path):
    root = _copy(tiny_brats, tmp_path)
    (_case_dir(root, "BraTS20_Training_002") / "BraTS20_Training_002_t1ce.nii.gz").unlink()
    reader = BratsReader(root)
    with pytest.raises(DataError, match=r"BraTS20_Training_002 has no t1ce"):
        reader.load_case("BraTS20_Training_002")
    # a reader without t1ce does not need it; a lenient reader skips the case with a warning
    assert BratsReader(root, modalities=["flair"]).load_case("BraTS20_Training_002").image.shape[0] == 1
    lenient = BratsReader(root, strict=False)
    with pytest.warns(UserWarning, match="BraTS20_Training_002"):
        cases = lenient.load_cases(lenient.list_cases("training"))
    assert [c.case_id for c in cases] == ["BraTS20_Training_001", "BraTS20_Training_003"]


def _rewrite(path: Path, fn) -> None:
    img = nib.load(str(path))
    data = fn(np.asarray(img.dataobj).copy())
    nib.save(nib.Nifti1Image(data, img.affine), str(path))


def test_label_3_mapped_to_1_with_warning(tiny_brats, tmp_path):
    root = _copy(tiny_brats, tmp_path)
    seg_path = _case_dir(root) / "BraTS20_Training_001_seg.nii.gz"
    _rewrite(seg_path, lambda s: np.where(s == 1, 3, s).astype(np.uint8))
    with pytest.warns(UserWarning, match="label 3"):
        case = BratsReader(root, label_mode="labels").load_case("BraTS20_Training_001")
    ref = BratsReader(tiny_brats, label_mode="labels").load_case("BraTS20_Training_001")
    np.testing.assert_array_equal(case.mask, ref.mask)


def test_label_outside_class_map(tiny_brats, tmp_path):
    root = _copy(tiny_brats, tmp_path)
    _rewrite(_case_dir(root) / "BraTS20_Training_001_seg.nii.gz", lambda s: np.where(s == 2, 7, s).astype(np.uint8))
    with pytest.raises(DataError, match=r"_seg\.nii\.gz: label values \[7\]"):
        BratsReader(root).load_case("BraTS20_Training_001")
    with pytest.warns(UserWarning, match=r"\[7\]"):
        BratsReader(root, strict=False).load_case("BraTS20_Training_001")


def test_nan_in_volume(tiny_brats, tmp_path):
    root = _copy(tiny_brats, tmp_path)
    path = _case_dir(root) / "BraTS20_Training_001_flair.nii.gz"
    def add_nan(a):
        a = a.astype(np.float32)
        a[3, 3, 3] = np.nan
        return a
    _rewrite(path, add_nan)
    with pytest.raises(DataError, match=r"_flair\.nii\.gz: 1 NaN"):
        BratsReader(root).load_case("BraTS20_Training_001")
    with pytest.warns(UserWarning, match="NaN"):
        case = BratsReader(root, strict=False).load_case("BraTS20_Training_001")
    assert np.isfinite(case.image).all()


def test_truncated_file_and_empty_folder(tiny_brats, tmp_path):
    root = _copy(tiny_brats, tmp_path)
    path = _case_dir(root) / "BraTS20_Training_001_t2.nii.gz"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"_t2\.nii\.gz: cannot read NIfTI"):
        BratsReader(root).load_case("BraTS20_Training_001")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no BraTS case folders"):
        BratsReader(tmp_path / "empty")


def test_bad_tumour_centre_rejected():
    with pytest.raises(ValueError, match="outside the synthetic brain"):
        make_head(np.random.default_rng(0), SHAPE, (0, 0, 0))
