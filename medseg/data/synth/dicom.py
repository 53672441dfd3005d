"""Write synthetic DICOM data in the folder layout (see :mod:`medseg.data.formats.files`):

* ``kind="series"``: ``images/<case>/IM<k>.dcm`` one CT-like slice per file (file names shuffled
  against the slice position, so only sorting by ImagePositionPatient gives the right order),
  with PixelSpacing, SliceThickness, orientation and a RescaleSlope/Intercept to Hounsfield-like
  units; ``masks/<case>.nii.gz`` on the same grid (the affine of the DICOM geometry).
* ``kind="xray"``: ``images/<case>.dcm`` single-frame X-rays (stored values need the rescale and
  the VOI window to look right; some MONOCHROME1) and ``masks/<case>.png``.

The objects are those of :func:`medseg.data.synth.folder.make_shapes`: round objects are
foreground. Files are written with pydicom as Explicit VR Little Endian.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.formats.files import itk_affine
from medseg.data.formats.nifti import write_nifti
from medseg.data.synth.folder import MARKER, make_shapes
from medseg.utils.io import save_with, write_image, write_json_atomic

#: stored = (value - intercept) / slope; the reader must undo it (modality LUT)
SLOPE, INTERCEPT = 2.0, -1024.0


def _dataset(rows: int, cols: int, pixels: np.ndarray, **tags):
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint16)).tobytes()
    return ds


def _write(ds, path: Path) -> None:
    save_with(path, lambda p: ds.save_as(str(p), enforce_file_format=True))


def write_dicom_series(out: str | Path, n: int = 6, size: Sequence[int] = (32, 32, 16), seed: int = 0,
                       spacing: Sequence[float] = (0.8, 0.8, 2.5)) -> Path:
    """``n`` cases of ``size`` (x, y, z) as DICOM series + NIfTI masks (see module docstring)."""
    from pydicom.uid import generate_uid

    out = Path(out)
    sx, sy, sz = (float(s) for s in spacing)
    for i in range(n):
        rng = np.random.default_rng((seed, i))
        s = make_shapes(rng, size)
        hu = s.image * 800.0 - 200.0  # -200..600 "HU"
        stored = np.round((hu - INTERCEPT) / SLOPE)
        cid = f"case_{i:03d}"
        series, study = generate_uid(), generate_uid()
        order = rng.permutation(size[2])
        origin = (-10.0 * i, 5.0, 30.0)
        for k in range(size[2]):
            pos = (origin[0], origin[1], origin[2] + k * sz)
            # a DICOM slice stores rows (y) x columns (x)
            ds = _dataset(size[1], size[0], stored[:, :, k].T, Modality="CT", SeriesInstanceUID=series,
                          StudyInstanceUID=study, PatientID=cid, InstanceNumber=int(order[k]) + 1,
                          ImagePositionPatient=list(pos), ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                          PixelSpacing=[sy, sx], SliceThickness=sz, RescaleSlope=SLOPE,
                          RescaleIntercept=INTERCEPT, FrameOfReferenceUID=series)
            _write(ds, out / "images" / cid / f"IM{int(order[k]):04d}.dcm")
        affine = itk_affine(origin, (sx, sy, sz), np.eye(3).ravel())
        write_nifti(out / "masks" / f"{cid}.nii.gz", s.labels[0], affine, spacing=(sx, sy, sz))
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.dicom", "kind": "series", "seed": seed, "n": n,
                                     "size": list(size), "classes": ["round"]})
    return out


def write_dicom_xray(out: str | Path, n: int = 8, size: Sequence[int] = (48, 48), seed: int = 0) -> Path:
    """``n`` single-frame DICOM X-rays ``images/<case>.dcm`` + ``masks/<case>.png``.

    The image's useful range sits in a window (centre 2000, width 1000 after the rescale) inside
    a 12-bit range, so reading the raw stored values gives a washed-out image; every third case is
    MONOCHROME1 (stored inverted).
    """
    from pydicom.uid import generate_uid

    out = Path(out)
    for i in range(n):
        s = make_shapes(np.random.default_rng((seed, i)), size)
        value = 1500.0 + s.image * 1000.0  # displayed range: the window [1500, 2500]
        mono1 = i % 3 == 2
        if mono1:
            value = 4000.0 - value  # white = low values
        stored = np.clip(np.round((value - INTERCEPT) / SLOPE), 0, 65535)
        ds = _dataset(size[0], size[1], stored, Modality="DX", SeriesInstanceUID=generate_uid(),
                      StudyInstanceUID=generate_uid(), PatientID=f"case_{i:03d}", PixelSpacing=[0.15, 0.15],
                      RescaleSlope=SLOPE, RescaleIntercept=INTERCEPT,
                      WindowCenter=2000.0 if not mono1 else 2000.0, WindowWidth=1001.0)
        if mono1:
            ds.PhotometricInterpretation = "MONOCHROME1"
        _write(ds, out / "images" / f"case_{i:03d}.dcm")
        write_image(out / "masks" / f"case_{i:03d}.png", s.labels[0] * np.uint8(255), "PNG")
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.dicom", "kind": "xray", "seed": seed, "n": n,
                                     "size": list(size), "classes": ["round"]})
    return out


def write_dicom(out: str | Path, kind: str = "series", n: int = 6, size: Sequence[int] | None = None,
                seed: int = 0) -> Path:
    """``kind="series"`` -> :func:`write_dicom_series`, ``"xray"`` -> :func:`write_dicom_xray`."""
    if kind == "series":
        return write_dicom_series(out, n=n, size=tuple(size or (32, 32, 16)), seed=seed)
    if kind == "xray":
        return write_dicom_xray(out, n=n, size=tuple(size or (48, 48)), seed=seed)
    raise ValueError(f"kind must be series or xray, got {kind!r}")
