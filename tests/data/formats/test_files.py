"""One file reader for every format: ITK geometry, DICOM series order / rescale / window, Pillow formats."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.data.formats.files import align_mask, itk_affine, itk_geometry, read_array, split_ext
from medseg.data.formats.folder import FolderReader
from medseg.data.synth.dicom import INTERCEPT, SLOPE, write_dicom_series, write_dicom_xray
from medseg.data.synth.folder import make_shapes, write_folder
from medseg.errors import DataError


def _shapes(i, size, seed=1):
    return make_shapes(np.random.default_rng((seed, i)), size)


def test_split_ext_knows_double_and_pillow_endings():
    assert split_ext("a.nii.gz") == ("a", ".nii.gz")
    assert split_ext("im0001.ah.pgm") == ("im0001.ah", ".pgm")
    assert split_ext("x.PPM") == ("x", ".ppm")
    assert split_ext("._case.nii.gz") == ("", "")  # macOS AppleDouble companion
    assert split_ext("notes.txt") == ("", "")


@pytest.mark.parametrize("ext", ["mha", "nrrd"])
def test_itk_volumes_round_trip_in_nifti_index_order(tmp_path, ext):
    import SimpleITK as sitk

    root = write_folder(tmp_path / ext, n=2, size=(12, 14, 10), ext=ext, seed=1)
    case = FolderReader(root, classes=["round"]).load_case("case_001")
    s = _shapes(1, (12, 14, 10))
    assert case.image.shape == (1, 12, 14, 10) and case.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(case.image[0], s.image, atol=1e-6)
    np.testing.assert_array_equal(case.mask, s.labels[0])
    # geometry: an ITK (LPS) origin/direction becomes the RAS affine, and back
    img = sitk.ReadImage(str(root / "images" / f"case_001.{ext}"))
    img.SetOrigin((3.0, -4.0, 5.0))
    img.SetSpacing((0.5, 0.7, 2.0))
    sitk.WriteImage(img, str(tmp_path / f"g.{ext}"))
    arr, meta = read_array(tmp_path / f"g.{ext}")
    assert arr.shape == (12, 14, 10) and meta["spacing"] == (0.5, 0.7, 2.0)
    np.testing.assert_allclose(meta["affine"] @ [2, 3, 4, 1], [-(3 + 1.0), -(-4 + 2.1), 5 + 8.0, 1])
    origin, spacing, _ = itk_geometry(meta["affine"])
    np.testing.assert_allclose(origin, (3.0, -4.0, 5.0))
    np.testing.assert_allclose(spacing, (0.5, 0.7, 2.0))


def test_dicom_series_sorted_by_position_with_rescale(tmp_path):
    root = write_dicom_series(tmp_path / "ct", n=2, size=(12, 14, 8), seed=1, spacing=(0.8, 0.9, 2.5))
    import pydicom

    files = sorted((root / "images" / "case_000").iterdir())
    z = [float(pydicom.dcmread(str(f)).ImagePositionPatient[2]) for f in files]
    assert z != sorted(z)  # file names do not follow the slice position: the reader must sort
    reader = FolderReader(root, classes=["round"])
    assert reader.spatial_dims == 3 and reader.list_cases("all") == ["case_000", "case_001"]
    case = reader.load_case("case_000")
    s = _shapes(0, (12, 14, 8))
    assert case.image.shape == (1, 12, 14, 8)
    np.testing.assert_allclose(case.spacing, (0.8, 0.9, 2.5))
    # stored values are (HU - intercept) / slope, rounded: the reader applies the modality LUT
    np.testing.assert_allclose(case.image[0], s.image * 800 - 200, atol=SLOPE / 2 + 1e-3)
    np.testing.assert_array_equal(case.mask, s.labels[0])  # NIfTI mask on the same grid
    assert INTERCEPT < 0 and not np.allclose(case.image[0].min(), 0)  # values are HU, not stored


def test_dicom_xray_window_rescale_and_monochrome1(tmp_path):
    root = write_dicom_xray(tmp_path / "xr", n=3, size=(20, 24), seed=1)
    reader = FolderReader(root, classes=["round"])
    assert reader.spatial_dims == 2 and reader.in_channels == 1
    for i in range(3):  # case 2 is MONOCHROME1 (stored inverted)
        case = reader.load_case(f"case_{i:03d}")
        np.testing.assert_allclose(case.image[0], _shapes(i, (20, 24)).image, atol=2e-3)
    raw, meta = read_array(root / "images" / "case_000.dcm")
    assert meta["window"] == (2000.0, 1001.0) and raw.min() >= 0 and raw.max() <= 1


def test_bad_dicom_names_the_file(tmp_path):
    root = write_dicom_xray(tmp_path / "xr", n=2, size=(16, 16), seed=1)
    bad = root / "images" / "case_001.dcm"
    bad.write_bytes(bad.read_bytes()[:400])
    with pytest.raises(DataError, match=r"case_001\.dcm: cannot read DICOM"):
        FolderReader(root, classes=["round"]).load_case("case_001")


def test_ppm_and_pgm(tmp_path):
    root = write_folder(tmp_path / "p", n=2, size=(20, 24), ext="ppm", mask_ext="pgm", seed=1)
    reader = FolderReader(root, classes=["round"])
    assert reader.in_channels == 3
    case = reader.load_case("case_000")
    s = _shapes(0, (20, 24))
    np.testing.assert_allclose(case.image[0], (s.image * 255 + 0.5).astype(np.uint8) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(case.mask, s.labels[0])
    gray = write_folder(tmp_path / "g", n=2, size=(20, 24), ext="pgm", seed=1)
    assert FolderReader(gray, classes=["round"]).in_channels == 1


def test_mask_in_another_axis_order_is_reoriented():
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[0, 1, 2] = 1
    image_affine = itk_affine((0, 0, 0), (1, 1, 1), np.eye(3).ravel())
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0]) @ image_affine
    flipped[0, 3] = image_affine[0, 3] - 3.0  # the same world grid, i axis stored reversed
    out = align_mask(mask[::-1], flipped, image_affine)
    np.testing.assert_array_equal(out, mask)
    assert align_mask(mask, image_affine, image_affine) is mask


def test_bad_variants_name_the_file(tmp_path):
    """Truncated ITK / PPM files, two series in one DICOM folder, a 2D nnU-Net label of the wrong size."""
    root = write_folder(tmp_path / "m", n=2, size=(8, 8, 6), ext="mha", seed=1)
    p = root / "images" / "case_001.mha"
    p.write_bytes(p.read_bytes()[:120])
    with pytest.raises(DataError, match=r"case_001\.mha: cannot read"):
        FolderReader(root, classes=["round"]).load_case("case_001")
    root = write_folder(tmp_path / "p", n=2, size=(8, 8), ext="ppm", seed=1)
    p = root / "images" / "case_000.ppm"
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(DataError, match=r"case_000\.ppm: cannot read image"):
        FolderReader(root, classes=["round"]).load_case("case_000")
    import shutil

    root = write_dicom_series(tmp_path / "ct", n=2, size=(8, 8, 4), seed=1)
    for f in (root / "images" / "case_001").iterdir():  # a second series in case_000's folder
        shutil.copy(f, root / "images" / "case_000" / f"b_{f.name}")
    with pytest.raises(DataError, match=r"case_000: 2 DICOM series in one folder"):
        FolderReader(root, classes=["round"]).load_case("case_000")
    from PIL import Image

    from medseg.data.formats.nnunet import NnunetReader
    from medseg.data.synth.nnunet import write_nnunet

    nn = write_nnunet(tmp_path / "Dataset9_X", n=2, n_test=0, size=(16, 16), file_ending=".png", folds=None)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(nn / "labelsTr" / "case_001.png")
    with pytest.raises(DataError, match=r"labelsTr/case_001\.png: label shape \(8, 8\) differs from the image"):
        NnunetReader(nn).load_case("case_001")


@pytest.mark.parametrize("ext", ["nii.gz", "mha"])
def test_2d_volume_formats_stay_2d(tmp_path, ext):
    root = write_folder(tmp_path / ext.replace(".", ""), n=2, size=(16, 20), ext=ext, seed=1)
    reader = FolderReader(root, classes=["round"])
    case = reader.load_case("case_001")
    assert reader.spatial_dims == 2 and case.image.shape == (1, 16, 20)
    np.testing.assert_array_equal(case.mask, _shapes(1, (16, 20)).labels[0])
