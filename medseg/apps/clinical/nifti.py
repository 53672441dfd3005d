"""NIfTI reading and atomic writing with clear errors (nibabel)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np

from medseg.apps.clinical.errors import ClinicalDataError
from medseg.utils.io import atomic_path


def read_nifti(path: str | Path, what: str = "volume") -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """``(array, affine, voxel sizes in mm)`` of a 3D NIfTI file.

    Raises :class:`~medseg.apps.clinical.ClinicalDataError` naming the file when it is missing, unreadable or
    not 3D.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise ClinicalDataError(f"{path}: {what} not found")
    try:
        img: Any = nib.load(str(path))  # a Nifti1Image (dataobj, affine), not the FileBasedImage base
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises several exception types for damaged files
        raise ClinicalDataError(f"{path}: cannot read {what} as NIfTI ({exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ClinicalDataError(f"{path}: {what} must be a 3D volume, got shape {data.shape}")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data, np.asarray(img.affine, float), zooms


def save_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` with ``affine`` atomically (gzip when the name ends in ``.gz``)."""
    import nibabel as nib

    path = Path(path)
    raw = nib.Nifti1Image(np.asarray(array), np.asarray(affine, float)).to_bytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(raw, compresslevel=1) if path.name.endswith(".gz") else raw)
    return path
