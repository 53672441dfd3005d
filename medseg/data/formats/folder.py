"""Reader for the generic layout most small segmentation sets use::

    root/images/<stem>.png            any of png, jpg, jpeg, tif, tiff, bmp, gif, nii, nii.gz
    root/masks/<stem>.png             same stem (plus an optional ``mask_suffix``)

or with splits: ``root/<split>/images`` + ``root/<split>/masks`` (``train``, ``test``...; case ids are
then ``<split>_<stem>``), or with
other folder names (``org/`` + ``label/`` in the 128x128 JSRT teaching set).

Task by config: ``binary`` (mask 0/1 or 0/255), ``multiclass`` (mask values are class indices
0..K, or raw values listed in ``mask_values``), ``multilabel`` (one binary mask per class in
``masks/<class>/<stem>.*``). Masks at another resolution than their image are an error, unless
``allow_resize`` (then they are resized with nearest neighbour, with a warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.errors import DataError
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.nifti import load_nifti
from medseg.data.preprocess import resize_nearest
from medseg.utils.io import read_image

EXTENSIONS = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


def split_ext(path: Path) -> tuple[str, str]:
    """``a.nii.gz -> ("a", ".nii.gz")``; ``("", "")`` for unsupported files."""
    name = path.name
    for ext in EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)], ext
    return "", ""


def read_array(path: Path) -> tuple[np.ndarray, dict]:
    """Read an image or volume file as stored -> ``(array, meta)``; 2D colour is ``(H, W, C)``."""
    if split_ext(path)[1] in (".nii", ".nii.gz"):
        data, affine, spacing = load_nifti(path)
        return data, {"affine": affine, "spacing": spacing}
    return read_image(path), {}


def _lossy(path: Path) -> bool:
    return split_ext(path)[1] in (".jpg", ".jpeg")


def to_float(arr: np.ndarray) -> np.ndarray:
    """Integer images to [0, 1] by their dtype's range; float images unchanged."""
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float32)


class FolderReader(SegmentationReader):
    """Read ``images/`` + ``masks/`` folders with matching stems.

    Args:
        root: the dataset folder.
        classes: foreground class names (binary: one name).
        task: ``binary``, ``multiclass`` or ``multilabel``.
        image_dir, mask_dir: folder names under the root (or under each split folder).
        mask_suffix: text after the image stem in mask names (e.g. ``_mask``).
        mask_values: multi-class only: raw mask values of the classes, background first
            (e.g. ``[0, 128, 255]``); default: values are the indices 0..K.
        allow_resize: masks at another resolution are resized (nearest) instead of rejected.
        strict: raise on bad files (``True``) or warn and skip them.
    """

    def __init__(
        self,
        root: str | Path,
        classes: Sequence[str] = ("foreground",),
        task: str = "binary",
        image_dir: str = "images",
        mask_dir: str = "masks",
        mask_suffix: str = "",
        mask_values: Sequence[int] | None = None,
        allow_resize: bool = False,
        strict: bool = True,
    ) -> None:
        super().__init__(root, strict)
        if task not in ("binary", "multiclass", "multilabel"):
            raise ValueError(f"task must be binary, multiclass or multilabel, got {task!r}")
        self.task, self.class_names = task, tuple(classes)
        if task == "binary" and len(self.class_names) != 1:
            raise ValueError(f"a binary task has exactly one class, got {list(classes)}")
        if mask_values is not None and len(mask_values) != len(self.class_names) + 1:
            raise ValueError(f"mask_values needs background + {len(self.class_names)} values, got {mask_values}")
        self.image_dir, self.mask_dir, self.mask_suffix = image_dir, mask_dir, mask_suffix
        self.mask_values = None if mask_values is None else [int(v) for v in mask_values]
        self.allow_resize = allow_resize
        self._resize_warned = self._jpeg_warned = False
        self._index: dict[str, dict[str, Path]] = {}
        layouts = [("all", self.root)] + [(p.name, p) for p in sorted(self.root.iterdir()) if p.is_dir()]
        for split, base in layouts:
            folder = base / image_dir
            if folder.is_dir():
                # case ids: the stem, prefixed by the split folder (names often repeat across splits)
                prefix = "" if split == "all" else f"{split}_"
                files = {prefix + split_ext(f)[0]: f for f in sorted(folder.iterdir()) if split_ext(f)[0]}
                if files:
                    self._index[split] = files
        if not self._index:
            raise DataError(f"{self.root}: no images found (expected {image_dir}/<name>.png or "
                            f"<split>/{image_dir}/<name>.png with one of {', '.join(EXTENSIONS)})")
        first = next(iter(next(iter(self._index.values())).values()))
        arr, _ = read_array(first)
        nifti = split_ext(first)[1] in (".nii", ".nii.gz")
        self.spatial_dims = arr.ndim if nifti else 2
        self.in_channels = 1 if (nifti or arr.ndim == 2) else min(arr.shape[2], 3)

    def available_splits(self) -> list[str]:
        return list(self._index)

    def list_cases(self, split: str) -> list[str]:
        if split not in self._index:
            raise DataError(f"{self.root}: split '{split}' not found (found {self.available_splits()})")
        return sorted(self._index[split])

    def has_labels(self, split: str) -> bool:
        return split in self._index and self._split_base(split).joinpath(self.mask_dir).is_dir()

    def _split_base(self, split: str) -> Path:
        return self.root if split == "all" else self.root / split

    def _find(self, case_id: str) -> tuple[str, Path]:
        for split, files in self._index.items():
            if case_id in files:
                return split, files[case_id]
        raise DataError(f"{self.root}: no image '{case_id}'")

    def _mask_file(self, folder: Path, stem: str) -> Path | None:
        for ext in EXTENSIONS:
            p = folder / f"{stem}{self.mask_suffix}{ext}"
            if p.is_file():
                return p
        return None

    def load_case(self, case_id: str) -> Case:
        split, path = self._find(case_id)
        arr, meta = read_array(path)
        if self.spatial_dims == 2:
            if arr.ndim == 3:
                arr = arr[..., :3].transpose(2, 0, 1)
            else:
                arr = arr[None]
        else:
            arr = arr[None]
        image = np.ascontiguousarray(to_float(arr))
        if not np.isfinite(image).all():
            raise DataError(f"{path}: image contains NaN or infinite values")
        stem = split_ext(path)[0]
        mask = self._load_mask(split, stem, image.shape[1:]) if self.has_labels(split) else None
        case = Case(case_id=case_id, image=image, mask=mask, spacing=meta.get("spacing"),
                    meta={"source": str(path), **({"affine": meta["affine"]} if "affine" in meta else {})})
        return case.validate(str(path))

    def _load_mask(self, split: str, stem: str, shape: tuple[int, ...]) -> np.ndarray:
        folder = self._split_base(split) / self.mask_dir
        if self.task == "multilabel":
            layers = []
            for name in self.class_names:
                p = self._mask_file(folder / name, stem)
                if p is None:
                    raise DataError(f"{folder / name}: no mask for {stem} (class {name})")
                layers.append(self._binary(self._read_mask(p, shape), p, lossy=_lossy(p)))
            return np.stack(layers).astype(np.uint8)
        p = self._mask_file(folder, stem)
        if p is None:
            raise DataError(f"{folder}: no mask for {stem} (expected {stem}{self.mask_suffix}.<ext>)")
        raw = self._read_mask(p, shape)
        if self.task == "binary":
            return self._binary(raw, p, lossy=_lossy(p))
        return self._indices(raw, p)

    def _read_mask(self, path: Path, shape: tuple[int, ...]) -> np.ndarray:
        arr, _ = read_array(path)
        if arr.ndim == len(shape) + 1 and self.spatial_dims == 2:
            colour = arr[..., :3]
            if colour.shape[-1] > 1 and not (colour == colour[..., :1]).all():
                raise DataError(f"{path}: colour mask (its R, G and B channels differ): save the mask as a "
                                "single-channel (grey or indexed) image of class values")
            arr = arr[..., 0]  # a grey mask saved as RGB(A): every colour channel holds the value
        if np.issubdtype(arr.dtype, np.floating) and (not np.isfinite(arr).all() or not np.all(arr == np.round(arr))):
            raise DataError(f"{path}: mask has non-integer or NaN values")
        arr = arr.astype(np.int64)
        if arr.shape != tuple(shape):
            if not self.allow_resize:
                raise DataError(f"{path}: mask size {arr.shape} differs from its image {tuple(shape)} "
                                f"(set allow_resize: true to resize masks with nearest neighbour)")
            if not self._resize_warned:
                warnings.warn(f"{path}: mask size {arr.shape} differs from its image {tuple(shape)}; "
                              f"masks are resized with nearest neighbour (further cases: silently)", stacklevel=2)
                self._resize_warned = True
            arr = resize_nearest(arr, shape)
        return arr

    def _binary(self, raw: np.ndarray, path: Path, lossy: bool = False) -> np.ndarray:
        values = set(np.unique(raw).tolist())
        if lossy and raw.max() > 1:
            if not self._jpeg_warned and not values <= {0, 255}:
                warnings.warn(f"{path}: JPEG mask with compression artefacts ({len(values)} gray levels): "
                              f"thresholded at 128 (further masks: silently)", stacklevel=3)
                self._jpeg_warned = True
            return (raw >= 128).astype(np.uint8)
        if not (values <= {0, 1} or values <= {0, 255}):
            self.bad(f"{path}: expected a binary mask (0/1 or 0/255), found values {sorted(values)[:8]}")
        return (raw > (127 if raw.max() > 1 else 0)).astype(np.uint8)

    def _indices(self, raw: np.ndarray, path: Path) -> np.ndarray:
        allowed = self.mask_values or list(range(len(self.class_names) + 1))
        values = set(np.unique(raw).tolist())
        extra = sorted(values - set(allowed))
        if extra:
            self.bad(f"{path}: mask values {extra[:8]} outside the class map {allowed} "
                     f"({', '.join(('background',) + self.class_names)})")
        out = np.zeros(raw.shape, np.uint8)
        for idx, v in enumerate(allowed):
            out[raw == v] = idx
        return out
