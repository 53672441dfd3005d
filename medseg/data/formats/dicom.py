"""DICOM reading: single-frame images (X-rays; pydicom, rescale + VOI window) and series folders
(SimpleITK/GDCM: slices sorted by position, spacing and orientation kept). Used through
:func:`medseg.data.formats.files.read_array`; the folder reader takes both (``data=dicom``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.errors import DataError

DICOM_ENDINGS = (".dcm", ".dicom")


def is_dicom_series(path: Path) -> bool:
    """A folder whose files are DICOM slices (``.dcm`` or extension-less files with the DICM magic)."""
    if not path.is_dir():
        return False
    files = [f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")]
    return bool(files) and all(f.suffix.lower() in DICOM_ENDINGS or (not f.suffix and _dicm(f)) for f in files)


def _dicm(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom_series(folder: Path) -> tuple[np.ndarray, dict]:
    """The slices of one DICOM series, sorted by position (GDCM), as an (i, j, k) volume."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise DataError(f"{folder}: no DICOM series found in this folder")
    if len(ids) > 1:
        raise DataError(f"{folder}: {len(ids)} DICOM series in one folder ({', '.join(ids[:3])}); "
                        "put each series in its own folder")
    files = reader.GetGDCMSeriesFileNames(str(folder), ids[0])
    if len(files) < 2:
        raise DataError(f"{folder}: a DICOM series needs at least 2 slices, found {len(files)}")
    reader.SetFileNames(files)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise DataError(f"{folder}: cannot read the DICOM series ({str(exc).strip().splitlines()[-1][:200]})") from exc
    from medseg.data.formats.files import _from_sitk

    arr, meta = _from_sitk(img, folder)
    return arr.astype(np.float32), meta


def read_dicom_file(path: Path) -> tuple[np.ndarray, dict]:
    """One single-frame DICOM image (an X-ray) -> float32 ``(H, W)`` in [0, 1].

    Modality LUT (rescale slope / intercept) then the VOI window (WindowCenter / WindowWidth, or
    the VOI LUT) as pydicom applies them; MONOCHROME1 (white = low) is inverted. Without a
    window the rescaled values are min-max scaled.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(str(path))
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken or pixel-less files
        raise DataError(f"{path}: cannot read DICOM pixels ({type(exc).__name__}: {exc})") from exc
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 or raw.ndim not in (2, 3):
        raise DataError(f"{path}: a multi-frame DICOM; give a series as a folder of single-frame files")
    arr = apply_modality_lut(raw, ds).astype(np.float64)
    window = None
    if "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds, prefer_lut=True).astype(np.float64)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        c = float(np.atleast_1d(ds.WindowCenter)[0])
        w = max(float(np.atleast_1d(ds.WindowWidth)[0]), 2.0)
        window = (c, w)
        # the linear VOI function of DICOM PS3.3 C.11.2.1.2, written out so the output is [0, 1]
        # directly (pydicom's apply_voi_lut maps to the stored bit range instead)
        arr = np.clip((arr - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    if window is None:
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        arr = 1.0 - arr
    meta: dict[str, object] = {"window": window}
    if "PixelSpacing" in ds:
        meta["spacing"] = tuple(float(s) for s in ds.PixelSpacing)
    return arr.astype(np.float32), meta
