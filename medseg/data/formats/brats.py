"""Reader for BraTS 2020 (Menze et al. 2015; Bakas et al. 2017), exactly as distributed::

    MICCAI_BraTS2020_TrainingData/BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz
                                                      ..._t1.nii.gz, _t1ce.nii.gz, _t2.nii.gz, _seg.nii.gz
    MICCAI_BraTS2020_ValidationData/BraTS20_Validation_001/...   (no seg)

Volumes are 240x240x155 at 1 mm in SRI24 space. Labels: 0 background, 1 necrotic / non-enhancing
tumour core, 2 peritumoral oedema, 4 enhancing tumour (3 in releases before 2017: mapped to 1).

The image is ``(C, 240, 240, 155)`` with one channel per selected modality, in the NIfTI array's
own index order (i, j, k): no reorientation, so a prediction written back with
``Case.meta["affine"]`` lines up with the source volumes.

Label modes:

* ``regions`` (multi-label, the BraTS evaluation): channels whole tumour (1|2|4), tumour core
  (1|4), enhancing tumour (4), uint8 ``(3, ...)``.
* ``labels`` (multi-class): 0/1/2/4 mapped to indices 0..3.

Real-world quirks handled: the seg file under another name (``_seg.nii``, ``Segm``, ``_Seg``, any
case), a missing modality (error naming the case), label 3 (mapped to 1 with a warning), NaNs.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.nifti import load_nifti
from medseg.errors import DataError

MODALITIES = ("flair", "t1", "t1ce", "t2")
SPLIT_FOLDERS = {"training": "MICCAI_BraTS2020_TrainingData", "validation": "MICCAI_BraTS2020_ValidationData"}
REGIONS = ("whole_tumour", "tumour_core", "enhancing_tumour")
LABELS = ("necrotic_core", "oedema", "enhancing_tumour")
_SEG = re.compile(r"_seg(m)?\.nii(\.gz)?$", re.IGNORECASE)
_NII = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


def regions_from_labels(seg: np.ndarray) -> np.ndarray:
    """BraTS labels {0,1,2,4} -> uint8 multi-hot ``(3, ...)``: whole tumour, tumour core, enhancing."""
    return np.stack([np.isin(seg, (1, 2, 4)), np.isin(seg, (1, 4)), seg == 4]).astype(np.uint8)


class BratsReader(SegmentationReader):
    """Read BraTS 2020 training / validation cases.

    Args:
        root: folder holding ``MICCAI_BraTS2020_TrainingData/`` and/or ``MICCAI_BraTS2020_ValidationData/``
            (or one of those folders itself, read as the ``training`` split).
        modalities: any subset of ``flair, t1, t1ce, t2``, in channel order.
        label_mode: ``regions`` (multi-label WT/TC/ET) or ``labels`` (multi-class 0/1/2/4 -> 0..3).
        strict: raise on bad files (``True``) or warn and skip them.
    """

    spatial_dims = 3

    def __init__(
        self,
        root: str | Path,
        modalities: Sequence[str] = MODALITIES,
        label_mode: str = "regions",
        strict: bool = True,
    ) -> None:
        super().__init__(root, strict)
        mods = [str(m).lower() for m in modalities]
        unknown = [m for m in mods if m not in MODALITIES]
        if unknown or not mods:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {list(modalities)}")
        if label_mode not in ("regions", "labels"):
            raise ValueError(f"label_mode must be regions or labels, got {label_mode!r}")
        self.modalities = mods
        self.label_mode = label_mode
        self.task = "multilabel" if label_mode == "regions" else "multiclass"
        self.class_names = REGIONS if label_mode == "regions" else LABELS
        self.in_channels = len(mods)
        self._dirs: dict[str, dict[str, Path]] = {}
        for split in SPLIT_FOLDERS:
            folder = self._split_folder(split)
            if folder is not None:
                self._dirs[split] = {p.name: p for p in sorted(folder.iterdir()) if p.is_dir()
                                     and any(_NII.search(f.name) for f in p.iterdir())}
        if not any(self._dirs.values()):
            raise DataError(f"{self.root}: no BraTS case folders found (expected "
                            f"{SPLIT_FOLDERS['training']}/BraTS20_Training_NNN/*.nii.gz)")

    def _split_folder(self, split: str) -> Path | None:
        name = SPLIT_FOLDERS[split]
        if (self.root / name).is_dir():
            return self.root / name
        if split == "training" and self.root.name == name:
            return self.root
        return None

    def available_splits(self) -> list[str]:
        return [s for s, cases in self._dirs.items() if cases]

    def list_cases(self, split: str) -> list[str]:
        if split not in self._dirs:
            raise DataError(f"{self.root}: BraTS split '{split}' not found ({SPLIT_FOLDERS.get(split, split)})")
        return sorted(self._dirs[split])

    def has_labels(self, split: str) -> bool:
        return split == "training"

    def case_dir(self, case_id: str) -> Path:
        for cases in self._dirs.values():
            if case_id in cases:
                return cases[case_id]
        raise DataError(f"{self.root}: no BraTS case '{case_id}'")

    def paths(self, case_id: str) -> dict[str, Path | None]:
        """``{modality: path, "seg": path or None}``; seg names are matched case-insensitively."""
        folder = self.case_dir(case_id)
        files = [f for f in folder.iterdir() if _NII.search(f.name)]
        out: dict[str, Path | None] = {}
        for mod in self.modalities:
            pattern = re.compile(rf"_{mod}\.nii(\.gz)?$", re.IGNORECASE)
            hits = [f for f in files if pattern.search(f.name)]
            if not hits:
                raise DataError(f"{folder}: case {case_id} has no {mod} volume "
                                f"(expected {case_id}_{mod}.nii.gz; found {sorted(f.name for f in files)})")
            out[mod] = min(hits)
        segs = sorted(f for f in files if _SEG.search(f.name))
        out["seg"] = segs[0] if segs else None
        return out

    def load_case(self, case_id: str) -> Case:
        paths = self.paths(case_id)
        channels, affine, spacing = [], None, None
        for mod in self.modalities:
            data, aff, sp = load_nifti(paths[mod])
            if data.ndim != 3:
                raise DataError(f"{paths[mod]}: expected a 3D volume, got shape {data.shape}")
            data = data.astype(np.float32)
            if not np.isfinite(data).all():
                n_bad = int((~np.isfinite(data)).sum())
                self.bad(f"{paths[mod]}: {n_bad} NaN/inf voxels")
                data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
            if channels and data.shape != channels[0].shape:
                raise DataError(f"{paths[mod]}: shape {data.shape} differs from "
                                f"{paths[self.modalities[0]].name} {channels[0].shape}")
            channels.append(data)
            affine, spacing = (aff, sp) if affine is None else (affine, spacing)
        image = np.stack(channels)
        mask = None
        if paths["seg"] is not None:
            mask = self._read_seg(paths["seg"], image.shape[1:])
        elif self._split_of(case_id) == "training":
            raise DataError(f"{self.case_dir(case_id)}: training case {case_id} has no segmentation "
                            f"(expected {case_id}_seg.nii.gz)")
        case = Case(case_id=case_id, image=image, mask=mask, spacing=spacing, group=case_id,
                    meta={"source": str(paths[self.modalities[0]]), "affine": affine,
                          "modalities": list(self.modalities),
                          "seg": str(paths["seg"]) if paths["seg"] else None})
        return case.validate(str(self.case_dir(case_id)))

    def _split_of(self, case_id: str) -> str:
        return next(s for s, cases in self._dirs.items() if case_id in cases)

    def _read_seg(self, path: Path, shape: tuple[int, ...]) -> np.ndarray:
        seg, _, _ = load_nifti(path)
        if seg.shape != shape:
            raise DataError(f"{path}: segmentation shape {seg.shape} differs from the images {shape}")
        if np.issubdtype(seg.dtype, np.floating):
            if not np.isfinite(seg).all():
                raise DataError(f"{path}: segmentation contains NaN")
            if not np.all(seg == np.round(seg)):
                raise DataError(f"{path}: segmentation has non-integer values")
        seg = seg.astype(np.int16)
        values = set(np.unique(seg).tolist())
        if 3 in values:
            warnings.warn(f"{path}: label 3 (pre-2017 BraTS 'non-enhancing core') mapped to 1", stacklevel=2)
            seg[seg == 3] = 1
            values = (values - {3}) | {1}
        extra = sorted(values - {0, 1, 2, 4})
        if extra:
            self.bad(f"{path}: label values {extra} outside the BraTS class map {{0, 1, 2, 4}}")
            seg[~np.isin(seg, (0, 1, 2, 4))] = 0
        if self.label_mode == "regions":
            return regions_from_labels(seg)
        lut = np.zeros(5, np.uint8)
        lut[[1, 2, 4]] = [1, 2, 3]
        return lut[seg]
