"""Generic images/ + masks/ reader: tasks, file types, splits and every kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medseg.data.case import DataError
from medseg.data.formats.folder import FolderReader
from medseg.data.synth.folder import SHAPES, make_shapes, write_folder
from tests.conftest import SMOKE_LR, assert_beats_constant


def _sample(i, size, overlap=False, seed=4):
    return make_shapes(np.random.default_rng((seed, i)), size, overlap=overlap)


@pytest.mark.parametrize("ext", ["png", "tif", "bmp"])
def test_binary_round_trip(tmp_path, ext):
    root = write_folder(tmp_path / "f", n=3, size=(40, 48), task="binary", ext=ext, seed=4)
    reader = FolderReader(root, classes=["round"])
    assert reader.available_splits() == ["all"] and reader.list_cases("all") == ["case_000", "case_001", "case_002"]
    case = reader.load_case("case_001")
    s = _sample(1, (40, 48))
    np.testing.assert_array_equal(case.image[0], (s.image * 255 + 0.5).astype(np.uint8) / np.float32(255))
    np.testing.assert_array_equal(case.mask, s.labels[0])


def test_multiclass_and_multilabel(tmp_path):
    root = write_folder(tmp_path / "mc", n=2, size=(40, 40), task="multiclass", seed=4)
    case = FolderReader(root, classes=list(SHAPES), task="multiclass").load_case("case_000")
    s = _sample(0, (40, 40))
    for k in range(3):
        np.testing.assert_array_equal(case.mask == k + 1, s.labels[k] > 0)
    root = write_folder(tmp_path / "ml", n=2, size=(40, 40), task="multilabel", seed=4)
    reader = FolderReader(root, classes=list(SHAPES), task="multilabel")
    case = reader.load_case("case_001")
    np.testing.assert_array_equal(case.mask, _sample(1, (40, 40), overlap=True).labels)


def test_nifti_volumes(tmp_path):
    root = write_folder(tmp_path / "nii", n=2, size=(20, 24, 16), task="binary", ext="nii.gz", seed=4)
    reader = FolderReader(root, classes=["round"])
    assert reader.spatial_dims == 3
    case = reader.load_case("case_000")
    s = _sample(0, (20, 24, 16))
    assert case.image.shape == (1, 20, 24, 16) and case.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(case.image[0], s.image)
    np.testing.assert_array_equal(case.mask, s.labels[0])


def test_int16_ct_volume_keeps_its_hounsfield_values(tmp_path):
    """A CT volume stored as int16 (the usual NIfTI) is read in HU, not scaled by the dtype's range
    (2D 8/16-bit pictures are: see test_binary_round_trip)."""
    from medseg.data.formats.nifti import write_nifti

    hu = np.arange(-1024, 1024, dtype=np.int16).reshape(8, 16, 16)
    (tmp_path / "ct" / "images").mkdir(parents=True)
    (tmp_path / "ct" / "masks").mkdir()
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    write_nifti(tmp_path / "ct" / "images" / "c0.nii.gz", hu, affine, spacing=(0.7, 0.7, 2.5))
    write_nifti(tmp_path / "ct" / "masks" / "c0.nii.gz", (hu > 500).astype(np.uint8), affine, spacing=(0.7, 0.7, 2.5))
    case = FolderReader(tmp_path / "ct", classes=["bone"]).load_case("c0")
    np.testing.assert_array_equal(case.image[0], hu.astype(np.float32))
    assert case.spacing == pytest.approx((0.7, 0.7, 2.5)) and case.mask.sum() == (hu > 500).sum()


def test_split_folders_and_mask_values(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        write_folder(tmp_path / "s" / split, n=n, size=(32, 32), task="multiclass", seed=4)
    root = tmp_path / "s"
    for p in (root / "train" / "masks").glob("*.png"):  # store classes as raw 0/100/150/200
        a = np.asarray(Image.open(p))
        Image.fromarray(np.choose(a, [0, 100, 150, 200]).astype(np.uint8)).save(p)
    reader = FolderReader(root, classes=list(SHAPES), task="multiclass", mask_values=[0, 100, 150, 200])
    assert reader.available_splits() == ["test", "train"]
    case = reader.load_case(reader.list_cases("train")[0])
    np.testing.assert_array_equal(case.mask == 2, _sample(0, (32, 32)).labels[1] > 0)


def test_bad_inputs(tmp_path):
    root = write_folder(tmp_path / "b", n=4, size=(32, 32), task="multiclass", seed=4)
    reader = FolderReader(root, classes=list(SHAPES), task="multiclass")
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(root / "masks" / "case_000.png")
    with pytest.raises(DataError, match=r"case_000\.png: mask values \[9\] outside the class map"):
        reader.load_case("case_000")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "masks" / "case_001.png")
    with pytest.raises(DataError, match=r"case_001\.png: mask size \(16, 16\) differs from its image \(32, 32\)"):
        reader.load_case("case_001")
    (root / "images" / "case_002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"case_002\.png: cannot read image"):
        reader.load_case("case_002")
    (root / "masks" / "case_003.png").unlink()
    with pytest.raises(DataError, match="no mask for case_003"):
        reader.load_case("case_003")
    lenient = FolderReader(root, classes=list(SHAPES), task="multiclass", strict=False)
    with pytest.warns(UserWarning) as record:
        cases = lenient.load_cases(lenient.list_cases("all"))
    # unknown values are warned about and become background; unreadable cases are skipped
    assert [c.case_id for c in cases] == ["case_000"] and cases[0].mask.max() == 0
    messages = " ".join(str(r.message) for r in record)
    assert "outside the class map" in messages and messages.count("skipping case") == 3
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        FolderReader(tmp_path / "empty")


def test_nan_in_volume(tmp_path):
    from medseg.data.formats.nifti import write_nifti

    root = write_folder(tmp_path / "n", n=1, size=(8, 8, 8), ext="nii.gz", seed=4)
    vol = np.zeros((8, 8, 8), np.float32)
    vol[1, 2, 3] = np.nan
    write_nifti(root / "images" / "case_000.nii.gz", vol, np.eye(4))
    with pytest.raises(DataError, match=r"case_000\.nii\.gz: image contains NaN"):
        FolderReader(root, classes=["round"]).load_case("case_000")


def test_train_one_epoch_folder_synth(train_synth):
    results, _ = train_synth("folder", "data.synthesize.n=8", "data.synthesize.size=[48,48]",
                             "data.samples_per_epoch=8", SMOKE_LR)
    assert_beats_constant(results, 0.79)  # measured 0.875


def test_jpeg_images_and_lossy_jpeg_masks(tmp_path):
    root = write_folder(tmp_path / "j", n=2, size=(40, 40), task="binary", ext="jpg", seed=4)
    assert (root / "images" / "case_000.jpg").is_file() and (root / "masks" / "case_000.png").is_file()
    reader = FolderReader(root, classes=["round"])
    s = _sample(0, (40, 40))
    case = reader.load_case("case_000")
    np.testing.assert_array_equal(case.mask, s.labels[0])
    assert np.abs(case.image[0] - s.image).mean() < 0.03  # lossy image, close
    # a JPEG-saved mask has artefacts: thresholded with a warning, not rejected
    (root / "masks" / "case_001.png").unlink()
    Image.fromarray(_sample(1, (40, 40)).labels[0] * np.uint8(255)).save(root / "masks" / "case_001.jpg", quality=70)
    with pytest.warns(UserWarning, match="JPEG mask with compression artefacts"):
        mask = FolderReader(root, classes=["round"]).load_case("case_001").mask
    assert (mask == _sample(1, (40, 40)).labels[0]).mean() > 0.97
