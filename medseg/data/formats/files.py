"""Read one image or volume file of any supported type -> ``(array, meta)``.

* NIfTI (``.nii``, ``.nii.gz``): nibabel, array in the file's index order (i, j, k), its affine.
* ITK volumes (``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr``): SimpleITK, transposed to the same (i, j, k)
  index order, with a RAS affine built from ITK's origin, spacing and direction (ITK is LPS).
* DICOM: one ``.dcm`` file (a single-frame X-ray: rescale slope/intercept and the VOI window
  applied, MONOCHROME1 inverted, result in [0, 1]; pydicom), or a folder of the slices of one
  series (sorted by position by SimpleITK/GDCM, spacing and orientation kept).
* Every other format Pillow reads (png, jpg, tif, bmp, gif, ppm, pgm, pbm, webp, ...), 2D, colour
  as ``(H, W, C)``.

``meta`` has ``affine`` and ``spacing`` for volumes, ``window`` for DICOM files. Every failure is a
:class:`~medseg.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.formats.dicom import _dicm, is_dicom_series, read_dicom_file, read_dicom_series
from medseg.data.formats.nifti import load_nifti
from medseg.errors import DataError
from medseg.utils.io import read_image

NIFTI = (".nii.gz", ".nii")
ITK = (".mha", ".mhd", ".nrrd", ".nhdr")
DICOM = (".dcm", ".dicom")
__all__ = ["read_array", "split_ext", "is_volume", "is_dicom_series", "read_dicom_file", "read_dicom_series",
           "read_itk", "itk_affine", "itk_geometry", "align_mask", "to_float", "lossy", "EXTENSIONS", "NIFTI",
           "ITK", "DICOM", "VOLUME", "PILLOW"]
#: volume formats (3D)
VOLUME = NIFTI + ITK


def _pillow_extensions() -> tuple[str, ...]:
    from PIL import Image

    Image.init()
    # Pillow also registers formats it can only write (e.g. .pdf, .h5): keep those it opens
    return tuple(sorted({e.lower() for e, fmt in Image.registered_extensions().items() if fmt in Image.OPEN},
                        key=lambda e: (-len(e), e)))


PILLOW = _pillow_extensions()
#: every supported file ending, longest first so ``.nii.gz`` wins over ``.gz``
EXTENSIONS = tuple(sorted(set(VOLUME + DICOM + PILLOW), key=lambda e: (-len(e), e)))


def split_ext(path: str | Path) -> tuple[str, str]:
    """``a.nii.gz -> ("a", ".nii.gz")``, ``im0001.ah.pgm -> ("im0001.ah", ".pgm")``; ``("", "")`` for
    unsupported files and hidden files (``._x.nii.gz`` from macOS archives)."""
    name = Path(path).name
    if name.startswith("."):
        return "", ""
    low = name.lower()
    for ext in EXTENSIONS:
        if low.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], ext
    return "", ""


def is_volume(path: Path) -> bool:
    return is_dicom_series(path) or split_ext(path)[1] in VOLUME


def itk_affine(origin: Sequence[float] | np.ndarray, spacing: Sequence[float] | np.ndarray,
               direction: Sequence[float] | np.ndarray) -> np.ndarray:
    """Voxel (i, j, k) -> RAS world affine from ITK's LPS origin, spacing and direction."""
    d = np.asarray(direction, float).reshape(3, 3)
    aff = np.eye(4)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    aff[:3, :3] = lps_to_ras @ d @ np.diag(np.asarray(spacing, float))
    aff[:3, 3] = lps_to_ras @ np.asarray(origin, float)
    return aff


def itk_geometry(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Inverse of :func:`itk_affine`: a RAS affine -> ITK ``(origin, spacing, direction)`` in LPS."""
    aff = np.asarray(affine, float)
    lps = np.diag([-1.0, -1.0, 1.0]) @ aff[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / np.where(spacing > 0, spacing, 1.0)
    origin = np.diag([-1.0, -1.0, 1.0]) @ aff[:3, 3]
    return tuple(origin.tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def _from_sitk(img, source: Path) -> tuple[np.ndarray, dict]:
    import SimpleITK as sitk

    if img.GetDimension() == 2:
        return sitk.GetArrayFromImage(img), {"spacing": tuple(float(s) for s in img.GetSpacing()[::-1])}
    if img.GetDimension() != 3:
        raise DataError(f"{source}: {img.GetDimension()}D image; expected 2D or 3D")
    arr = sitk.GetArrayFromImage(img)  # (z, y, x[, c])
    arr = np.ascontiguousarray(np.moveaxis(arr, (0, 1, 2), (2, 1, 0)))  # -> (x, y, z[, c]) like NIfTI
    return arr, {"affine": itk_affine(img.GetOrigin(), img.GetSpacing(), img.GetDirection()),
                 "spacing": tuple(float(s) for s in img.GetSpacing())}


def read_itk(path: Path) -> tuple[np.ndarray, dict]:
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DataError(f"{path}: cannot read ({str(exc).strip().splitlines()[-1][:200]})") from exc
    return _from_sitk(img, path)


def read_array(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read an image or volume file (or a DICOM series folder) as stored -> ``(array, meta)``."""
    path = Path(path)
    if path.is_dir():
        if is_dicom_series(path):
            return read_dicom_series(path)
        raise DataError(f"{path}: a folder that is not a DICOM series")
    ext = split_ext(path)[1]
    if ext in NIFTI:
        data, affine, spacing = load_nifti(path)
        return data, {"affine": affine, "spacing": spacing}
    if ext in ITK:
        return read_itk(path)
    if ext in DICOM or (not ext and _dicm(path)):
        return read_dicom_file(path)
    if not ext:
        raise DataError(f"{path}: unsupported file type (supported: nii.gz, nii, mha, mhd, nrrd, dcm "
                        "and the formats Pillow reads)")
    return read_image(path), {}


def lossy(path: str | Path) -> bool:
    return split_ext(path)[1] in (".jpg", ".jpeg", ".jpe", ".jfif", ".webp")


def to_float(arr: np.ndarray) -> np.ndarray:
    """Integer images to [0, 1] by their dtype's range; float and boolean images as float32."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float32)


def align_mask(mask: np.ndarray, mask_affine: np.ndarray | None, image_affine: np.ndarray | None) -> np.ndarray:
    """Flip / permute a 3D mask array so its axes match the image's (both have an affine).

    A mask saved by another tool (a NIfTI next to a DICOM series) may store the same grid in
    another axis order; the orientations come from the affines (nibabel). Same orientation: unchanged.
    """
    if mask_affine is None or image_affine is None or mask.ndim != 3:
        return mask
    import nibabel as nib

    src = nib.orientations.io_orientation(np.asarray(mask_affine))
    dst = nib.orientations.io_orientation(np.asarray(image_affine))
    if np.array_equal(src, dst):
        return mask
    return np.ascontiguousarray(nib.orientations.apply_orientation(mask, nib.orientations.ornt_transform(src, dst)))
