"""Write predictions: PNG masks (2D), NIfTI with the source affine (3D), probability maps.

Conventions:

* PNG, binary task: 0 / 255. Multi-class: the class index per pixel (uint8, or uint16 above 255
  classes). Multi-label (classes overlap, e.g. hand bones): one 0/255 PNG per class in
  ``<case_id>/<class>.png`` (or use the RLE CSV of :mod:`medseg.inference.rle`).
* NIfTI: the label volume with the source image's affine (``case.meta["affine"]``, identity scaled
  by ``case.spacing`` when absent) and, optionally, a value per class index (BraTS: 0/1/2/4). If the
  reader reordered the NIfTI array axes, it records the permutation in ``case.meta["nifti_axes"]``
  (our axis ``i`` = file axis ``nifti_axes[i]``); the writer undoes it, and pastes predictions on
  cropped cases (``meta["crop_bbox"]``, ``meta["original_shape"]``) back, so the file overlays the source.
* Probability maps: float16 ``.npy`` ``(C, H, W)`` in 2D, float32 4D NIfTI in 3D.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.data.case import Case
from medseg.data.preprocess import uncrop
from medseg.tasks import Task
from medseg.utils.io import save_with, write_image

#: BraTS label values for class indices 0..3 (background, necrotic core, oedema, enhancing tumour)
BRATS_LABELS = (0, 1, 2, 4)


def label_map(task: Task, pred: torch.Tensor | np.ndarray) -> np.ndarray:
    """Boolean ``(K, *spatial)`` -> class indices ``(*spatial)`` (binary / multi-class; 0 = background)."""
    if task.kind == "multilabel":
        raise ValueError("multi-label predictions overlap: write one mask per class instead of a label map")
    p = pred.numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    labels = np.zeros(p.shape[1:], dtype=np.uint16)
    for k in range(p.shape[0]):
        labels[p[k]] = k + 1
    return labels


def brats_labels_from_regions(wt: np.ndarray, tc: np.ndarray, et: np.ndarray) -> np.ndarray:
    """Nested BraTS regions (whole tumour ⊇ tumour core ⊇ enhancing) -> labels 0/1/2/4."""
    out = np.zeros(wt.shape, dtype=np.uint8)
    out[wt.astype(bool)] = 2
    out[tc.astype(bool)] = 1
    out[et.astype(bool)] = 4
    return out


def _png(path: Path, array: np.ndarray) -> Path:
    return write_image(path, array, "PNG")


def write_png_mask(out_dir: str | Path, case_id: str, task: Task, pred: torch.Tensor) -> list[Path]:
    """PNG mask(s) of one 2D case (see module docstring). Returns the written paths."""
    out_dir = Path(out_dir)
    p = pred.numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if task.kind == "binary":
        return [_png(out_dir / f"{case_id}.png", (p[0] * 255).astype(np.uint8))]
    if task.kind == "multilabel":
        return [_png(out_dir / case_id / f"{name}.png", (p[k] * 255).astype(np.uint8))
                for k, name in enumerate(task.class_names)]
    labels = label_map(task, pred)
    return [_png(out_dir / f"{case_id}.png", labels.astype(np.uint8) if labels.max() < 256 else labels)]


def case_affine(case: Case) -> np.ndarray:
    """The source affine of a case, or a diagonal one from its spacing."""
    affine = case.meta.get("affine")
    if affine is not None:
        return np.asarray(affine, dtype=np.float64)
    spacing = list(case.spacing or (1.0, 1.0, 1.0))
    return np.diag([*spacing[:3], 1.0])


def to_source_grid(volume: np.ndarray, meta: dict) -> np.ndarray:
    """Undo the grid changes of preprocessing: paste back a crop (``meta["crop_bbox"]``), then
    resample (nearest) to the source shape when ``data.max_size`` / ``data.spacing`` resampled the
    case (``meta["resampled_from"]``)."""
    from medseg.data.preprocess import resize_nearest

    volume = uncrop(volume, meta)
    if meta.get("resampled_from"):
        volume = resize_nearest(volume, meta["resampled_from"])
    return volume


def _to_file_axes(case: Case, volume: np.ndarray) -> np.ndarray:
    """Our ``(*channels, D, H, W)`` -> the file's ``(X, Y, Z, *channels)`` (see module docstring)."""
    volume = to_source_grid(volume, case.meta)  # predictions on a cropped / resampled case: the source grid
    axes = case.meta.get("nifti_axes")
    lead = volume.ndim - 3
    if axes is not None:
        volume = np.transpose(volume, list(range(lead)) + [lead + int(i) for i in np.argsort(axes)])
    return np.moveaxis(volume, list(range(lead)), list(range(3, volume.ndim))) if lead else volume


def write_nifti(path: str | Path, volume: np.ndarray, case: Case) -> Path:
    """Save ``(D, H, W)`` labels or ``(C, D, H, W)`` maps (channels become the 4th NIfTI axis),
    gzip-compressed, atomically."""
    import gzip

    import nibabel as nib

    data = _to_file_axes(case, np.asarray(volume))
    img = nib.Nifti1Image(data, case_affine(case))
    img.header.set_data_dtype(data.dtype)
    payload = gzip.compress(img.to_bytes(), compresslevel=4)
    return save_with(path, lambda p: p.write_bytes(payload))


def write_nifti_labels(out_dir: str | Path, case: Case, task: Task, pred: torch.Tensor,
                       values: Sequence[int] | None = None) -> Path:
    """Label volume of one 3D case as ``<case_id>.nii.gz``; ``values[k]`` is written for class index
    ``k`` (e.g. :data:`BRATS_LABELS`); multi-label BraTS regions (WT, TC, ET) become 0/1/2/4."""
    p = pred.numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if task.kind == "multilabel":
        if len(task.class_names) != 3:
            raise ValueError("multi-label NIfTI output expects the three BraTS regions (WT, TC, ET)")
        labels = brats_labels_from_regions(p[0], p[1], p[2])
    else:
        labels = label_map(task, pred)
        if values is not None:
            lut = np.asarray(values, dtype=np.uint16)
            if lut.size < labels.max() + 1:
                raise ValueError(f"{len(values)} label values for {labels.max() + 1} classes")
            labels = lut[labels]
        labels = labels.astype(np.uint8) if labels.max() < 256 else labels
    return write_nifti(Path(out_dir) / f"{case.case_id}.nii.gz", labels, case)


def write_probabilities(out_dir: str | Path, case: Case, probs: torch.Tensor) -> Path:
    """Per-class probability maps: ``<case_id>.npy`` (float16) in 2D, ``<case_id>.nii.gz`` in 3D."""
    arr = probs.numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    if arr.ndim == 4:
        return write_nifti(Path(out_dir) / f"{case.case_id}.nii.gz", arr.astype(np.float32), case)
    return save_with(Path(out_dir) / f"{case.case_id}.npy", lambda p: np.save(p, arr.astype(np.float16)))


def nnunet_labels(task: Task, pred: torch.Tensor | np.ndarray, label_values: Any = None) -> np.ndarray:
    """A prediction as an nnU-Net label map: ``label_values`` (a reader's ``LabelMap``, for the
    dataset's own values and nnU-Net region order), else 0/1 for binary, the class index for
    multi-class, BraTS 0/1/2/4 for the three BraTS regions."""
    p = pred.numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if label_values is not None:
        return label_values.to_labels(p)
    if task.kind == "multilabel":
        if len(task.class_names) != 3:
            raise ValueError("multi-label predictions overlap: nnU-Net output needs region labels "
                             "(an nnU-Net dataset's regions_class_order) or the three BraTS regions")
        return brats_labels_from_regions(p[0], p[1], p[2])
    labels = label_map(task, pred)
    return labels.astype(np.uint8) if labels.max() < 256 else labels


def write_nnunet_prediction(out_dir: str | Path, case: Case, task: Task, pred: torch.Tensor | np.ndarray,
                            file_ending: str = ".nii.gz", label_values: object | None = None) -> Path:
    """One case as nnU-Net writes predictions: ``<out_dir>/<case identifier><file_ending>``, a label map
    with the dataset's label values on the source image's grid (crop and resampling undone; 3D
    with the source affine), so ``nnUNetv2_evaluate_simple <labelsTr> <out_dir> -l 1 2 ...`` scores it."""
    import re

    labels = nnunet_labels(task, pred, label_values)
    ident = re.sub(r"_\d{4}$", "", case.case_id)  # a channel file name given as input: <case>_0000
    path = Path(out_dir) / f"{ident}{file_ending}"
    if labels.ndim == 3:
        if file_ending in (".nii.gz", ".nii"):
            return write_nifti(path, labels, case)
        import SimpleITK as sitk

        from medseg.data.formats.files import itk_geometry

        vol = _to_file_axes(case, labels)  # (i, j, k)
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(vol, (2, 1, 0))))
        origin, spacing, direction = itk_geometry(case_affine(case))
        img.SetOrigin(origin)
        img.SetSpacing(spacing)
        img.SetDirection(direction)
        return save_with(path, lambda p: sitk.WriteImage(img, str(p), useCompression=True))
    labels = to_source_grid(labels, case.meta)
    fmt = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(file_ending.lower(), "PNG")
    return write_image(path, labels.astype(np.uint8) if labels.max() < 256 else labels.astype(np.uint16), fmt)
