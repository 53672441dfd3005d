"""DRIVE reader: round trip with the generator, the real files when present, and bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from medseg.data.case import DataError
from medseg.data.formats.drive import DriveReader
from tests.conftest import SHARED_DRIVE


def test_round_trip_with_generator(tiny_drive):
    reader = DriveReader(tiny_drive)
    assert reader.available_splits() == ["training", "test"]
    assert reader.list_cases("training")[0] == "21_training"
    case = reader.load_case("21_training")
    rgb = np.asarray(Image.open(tiny_drive / "training/images/21_training.tif"))
    label = np.asarray(Image.open(tiny_drive / "training/1st_manual/21_manual1.gif").convert("L"))
    fov = np.asarray(Image.open(tiny_drive / "training/mask/21_training_mask.gif").convert("L"))
    assert case.image.shape == (3, 64, 64) and case.image.dtype == np.float32
    np.testing.assert_allclose(case.image, rgb.transpose(2, 0, 1) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(case.mask, (label > 127).astype(np.uint8))
    np.testing.assert_array_equal(case.roi, fov > 127)
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0


def test_second_annotator(tiny_drive):
    reader = DriveReader(tiny_drive, annotator=2)
    case = reader.load_case("01_test")
    first = DriveReader(tiny_drive).load_case("01_test")
    assert case.mask.sum() <= first.mask.sum()


@pytest.fixture
def drive_copy(tiny_drive, tmp_path):
    dst = tmp_path / "DRIVE"
    shutil.copytree(tiny_drive, dst)
    return dst


def test_missing_root_names_path(tmp_path):
    with pytest.raises(DataError, match="does_not_exist.*does not exist"):
        DriveReader(tmp_path / "does_not_exist")


def test_empty_folder_names_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*no DRIVE split"):
        DriveReader(tmp_path / "empty")


def test_corrupt_image_names_file(drive_copy):
    bad = drive_copy / "training/images/22_training.tif"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    with pytest.raises(DataError, match="22_training.tif"):
        DriveReader(drive_copy).load_case("22_training")


def test_wrong_mask_size_names_file(drive_copy):
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(drive_copy / "training/1st_manual/23_manual1.gif")
    with pytest.raises(DataError, match=r"23_manual1.gif: size \(12, 10\) differs"):
        DriveReader(drive_copy).load_case("23_training")


def test_non_binary_mask_strict_and_lenient(drive_copy):
    arr = np.zeros((64, 64), np.uint8)
    arr[:5] = 128
    arr[5:10] = 255
    Image.fromarray(arr).save(drive_copy / "training/1st_manual/24_manual1.gif")
    with pytest.raises(DataError, match="24_manual1.gif: expected a binary"):
        DriveReader(drive_copy).load_case("24_training")
    with pytest.warns(UserWarning, match="24_manual1.gif"):
        case = DriveReader(drive_copy, strict=False).load_case("24_training")
    assert case.mask[:5].sum() == 320 and case.mask[5:10].all()


def test_missing_label_and_lenient_skip(drive_copy):
    (drive_copy / "training/1st_manual/25_manual1.gif").unlink()
    with pytest.raises(DataError, match="25_manual1.gif: label file not found"):
        DriveReader(drive_copy).load_case("25_training")
    reader = DriveReader(drive_copy, strict=False)
    with pytest.warns(UserWarning, match="25_training"):
        cases = reader.load_cases(reader.list_cases("training"))
    assert [c.case_id for c in cases] == ["21_training", "22_training", "23_training", "24_training", "26_training"]


def test_missing_fov_is_derived_from_image(drive_copy):
    (drive_copy / "training/mask/21_training_mask.gif").unlink()
    real = np.asarray(Image.open(drive_copy / "training/mask/22_training_mask.gif").convert("L")) > 0
    derived = DriveReader(drive_copy).load_case("21_training").roi
    assert derived.dtype == bool and derived[32, 32] and not derived[0, 0]
    # the synthetic FOV is the same circle for every image: the derived one must nearly match it
    assert (derived != real).mean() < 0.05


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_DRIVE.is_dir(), reason="../shared/data/DRIVE not present (fresh clone)")
def test_real_drive_training_split():
    reader = DriveReader(SHARED_DRIVE)
    assert reader.available_splits() == ["training"]
    ids = reader.list_cases("training")
    assert ids == [f"{i}_training" for i in range(21, 41)]
    case = reader.load_case("21_training")
    assert case.image.shape == (3, 584, 565)
    assert set(np.unique(case.mask).tolist()) == {0, 1}
    frac = case.mask[case.roi].mean()
    assert 0.05 < frac < 0.25  # DRIVE vessels cover ~12% of the FOV
