"""NIfTI reading with clear errors (shared by the BraTS and generic folder readers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import DataError


def load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read a NIfTI file -> ``(array, affine, spacing)``; :class:`DataError` naming the file if it fails."""
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))  # an image class with dataobj/affine, not the FileBasedImage base
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for truncated/corrupt files
        raise DataError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from exc
    return data, np.asarray(img.affine, dtype=np.float64), tuple(float(z) for z in img.header.get_zooms()[:3])


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray, spacing=None) -> Path:
    """Write ``array`` atomically as ``.nii.gz`` (or ``.nii``) with ``affine`` and zooms in mm."""
    import gzip

    import nibabel as nib

    from medseg.utils.io import save_with

    img = nib.Nifti1Image(array, affine)
    if spacing is not None:
        img.header.set_zooms(tuple(float(s) for s in spacing)[: array.ndim])
    img.header.set_xyzt_units("mm")
    data = img.to_bytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=1)
    return save_with(path, lambda p: p.write_bytes(data))
