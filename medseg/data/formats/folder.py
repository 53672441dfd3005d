"""Reader for the generic layouts most small segmentation sets use::

    root/images/<stem>.png            any 2D format Pillow reads (png, jpg, tif, bmp, gif, ppm, pgm, ...),
                                      NIfTI, .mha/.mhd/.nrrd, a DICOM file (X-ray) or a folder of DICOM slices
    root/masks/<stem>.png             the mask; its name comes from ``mask_pattern`` (default ``{stem}.*``)

or with split folders ``root/<split>/images`` + ``root/<split>/masks`` (case ids are then
``<split>_<stem>``), or any number of ``pairs`` of folders, each with its split name::

    pairs:
      - {images: train_png, masks: train_masks_png, split: train}
      - {images: val_png, masks: val_masks_png, split: val}
      - {images: test_png, split: test}          # no masks: unlabelled

Matching an image with its mask: ``mask_pattern`` is the mask's file name with ``{stem}`` for the
image's stem (``{stem}_mask.png``, ``{stem}.ah.pgm``, ``{stem}_seg.*`` where ``*`` is any supported
ending), or ``image_regex`` / ``mask_regex`` are regular expressions over the file names with a
named group ``(?P<stem>...)`` that must agree (``(?P<stem>\\d+)_training\\.tif`` with
``(?P<stem>\\d+)_manual1\\.gif``). Images without a mask and masks without an image are listed
in one warning (an error with ``unmatched: error``); an image without a mask then fails when loaded
(skipped with ``strict: false``).

Task by config: ``binary`` (mask 0/1 or 0/255), ``multiclass`` (mask values are class indices
0..K, or raw values listed in ``mask_values``), ``multilabel`` (one binary mask per class in
``masks/<class>/<mask name>``). Masks at another resolution than their image are an error, unless
``allow_resize`` (then they are resized with nearest neighbour, with a warning). A 3D mask whose
affine stores the image's grid in another axis order (a NIfTI next to a DICOM series) is reoriented.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.files import (
    EXTENSIONS,
    align_mask,
    is_dicom_series,
    is_volume,
    lossy,
    read_array,
    split_ext,
    to_float,
)
from medseg.data.preprocess import resize_nearest
from medseg.errors import ConfigError, DataError

__all__ = ["FolderReader", "EXTENSIONS", "split_ext", "read_array", "to_float", "pattern_regex"]

_lossy = lossy  # old private name


def pattern_regex(pattern: str) -> re.Pattern:
    """``{stem}_mask.*`` -> a regex with group ``stem`` matching whole file names (``*``: any ending)."""
    if "{stem}" not in pattern:
        raise ConfigError(f"data.reader.mask_pattern={pattern!r} must contain {{stem}} (e.g. '{{stem}}_mask.png')")
    ends = "|".join(re.escape(e) for e in EXTENSIONS)
    out, rest = "", pattern
    while rest:
        if rest.startswith("{stem}"):
            out, rest = out + "(?P<stem>.+?)", rest[6:]
        elif rest.startswith(".*") and len(rest) == 2:
            out, rest = out + f"(?:{ends})", ""
        elif rest[0] == "*":
            out, rest = out + ".*?", rest[1:]
        else:
            out, rest = out + re.escape(rest[0]), rest[1:]
    return re.compile(out, re.IGNORECASE)


@dataclass
class _Pair:
    split: str
    images: Path
    masks: Path | None
    prefix: str


class FolderReader(SegmentationReader):
    """Read image folders with matching mask folders.

    Args:
        root: the dataset folder.
        classes: foreground class names (binary: one name).
        task: ``binary``, ``multiclass`` or ``multilabel``.
        image_dir, mask_dir: folder names under the root (or under each split folder).
        mask_suffix: text after the image stem in mask names (e.g. ``_mask``); shorthand for
            ``mask_pattern: "{stem}<suffix>.*"``.
        mask_values: multi-class only: raw mask values of the classes, background first
            (e.g. ``[0, 128, 255]``); default: values are the indices 0..K.
        allow_resize: masks at another resolution are resized (nearest) instead of rejected.
        strict: raise on bad files (``True``) or warn and skip them.
        pairs: ``[{images, masks, split}, ...]`` folders relative to ``root`` (``masks`` may be
            omitted for unlabelled splits); replaces ``image_dir`` / ``mask_dir``.
        mask_pattern: mask file name with ``{stem}``, e.g. ``{stem}_mask.png``, ``{stem}.ah.pgm``.
        image_regex, mask_regex: regexes with a ``(?P<stem>...)`` group over image / mask file
            names; an image whose name does not match is not a case (listed as unmatched).
        unmatched: ``warn`` (default) or ``error`` about images without masks and masks without images.
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
        pairs: Sequence[Mapping[str, str]] | None = None,
        mask_pattern: str | None = None,
        image_regex: str | None = None,
        mask_regex: str | None = None,
        unmatched: str = "warn",
    ) -> None:
        super().__init__(root, strict)
        if task not in ("binary", "multiclass", "multilabel"):
            raise ConfigError(f"data.reader.task must be binary, multiclass or multilabel, got {task!r}")
        self.task, self.class_names = task, tuple(classes)
        if task == "binary" and len(self.class_names) != 1:
            raise ConfigError(f"data.reader.classes: a binary task has exactly one class, got {list(classes)}")
        if mask_values is not None and len(mask_values) != len(self.class_names) + 1:
            raise ConfigError(f"data.reader.mask_values needs background + {len(self.class_names)} values, "
                              f"got {list(mask_values)}")
        if unmatched not in ("warn", "error"):
            raise ConfigError(f"data.reader.unmatched must be warn or error, got {unmatched!r}")
        self.image_dir, self.mask_dir, self.mask_suffix = image_dir, mask_dir, mask_suffix
        self.mask_values = None if mask_values is None else [int(v) for v in mask_values]
        self.allow_resize = allow_resize
        self.mask_pattern = mask_pattern or "{stem}" + mask_suffix + ".*"
        try:
            self._image_re = re.compile(image_regex) if image_regex else None
            self._mask_re = re.compile(mask_regex) if mask_regex else pattern_regex(self.mask_pattern)
        except re.error as exc:
            raise ConfigError(f"data.reader.image_regex / mask_regex: invalid regular expression ({exc})") from exc
        for name, rx in (("image_regex", self._image_re), ("mask_regex", self._mask_re)):
            if rx is not None and "stem" not in rx.groupindex:
                raise ConfigError(f"data.reader.{name}={rx.pattern!r} needs a named group (?P<stem>...)")
        self._resize_warned = self._jpeg_warned = False
        self._pairs = self._find_pairs(pairs)
        self._index: dict[str, dict[str, Path]] = {}
        self._pair_of: dict[str, _Pair] = {}
        self._stem: dict[str, str] = {}
        self._masks: dict[str, dict[str, Path]] = {}  # case id -> {class or "": mask path}
        self.unmatched: dict[str, list[str]] = {"images without masks": [], "masks without images": []}
        self.skipped: list[str] = []  # files in image folders that are not images
        for pair in self._pairs:
            self._index_pair(pair)
        if not self._index:
            raise DataError(self._nothing_found())
        self._report_unmatched(unmatched)
        first = next(iter(next(iter(self._index.values())).values()))
        arr, _ = read_array(first)
        self.spatial_dims = 3 if is_volume(first) and arr.ndim == 3 else 2  # a 2D NIfTI / .mha is 2D
        self.in_channels = 1 if (self.spatial_dims == 3 or arr.ndim == 2) else min(arr.shape[2], 3)

    # ----------------------------------------------------------- discovery
    def _find_pairs(self, pairs) -> list[_Pair]:
        if pairs:
            out = []
            for i, p in enumerate(pairs):
                if not isinstance(p, Mapping) or "images" not in p:
                    raise ConfigError(f"data.reader.pairs[{i}]: expected {{images: <folder>, masks: <folder>, "
                                      f"split: <name>}}, got {p!r}")
                images = self.root / str(p["images"])
                if not images.is_dir():
                    raise DataError(f"{images}: image folder of data.reader.pairs[{i}] not found")
                masks = self.root / str(p["masks"]) if p.get("masks") else None
                if masks is not None and not masks.is_dir():
                    raise DataError(f"{masks}: mask folder of data.reader.pairs[{i}] not found")
                out.append(_Pair(str(p.get("split", "all")), images, masks, ""))
            return out
        layouts = [("all", self.root)] + [(p.name, p) for p in sorted(self.root.iterdir()) if p.is_dir()]
        return [_Pair(split, base / self.image_dir, base / self.mask_dir if (base / self.mask_dir).is_dir() else None,
                      "" if split == "all" else f"{split}_")
                for split, base in layouts if (base / self.image_dir).is_dir()]

    def _image_stem(self, path: Path) -> str | None:
        if path.is_dir():
            if not is_dicom_series(path):
                return None
            name = path.name
        else:
            name = path.name if split_ext(path)[0] else ""
            if not name:
                return None
        if self._image_re is not None:
            m = self._image_re.fullmatch(name)
            return m.group("stem") if m else None
        return name if path.is_dir() else split_ext(path)[0]

    def _mask_index(self, folder: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        if not folder.is_dir():
            return out
        for f in sorted(folder.iterdir()):
            if f.name.startswith(".") or (f.is_dir() and not is_dicom_series(f)):
                continue
            m = self._mask_re.fullmatch(f.name)
            if m:
                out.setdefault(m.group("stem"), f)
            elif f.is_file():
                self.unmatched["masks without images"].append(str(f))
        return out

    def _index_pair(self, pair: _Pair) -> None:
        files: dict[str, Path] = {}
        for f in sorted(pair.images.iterdir()):
            stem = self._image_stem(f)
            if stem is None:
                if not f.name.startswith("."):
                    self.skipped.append(str(f))
                continue
            cid = pair.prefix + stem
            if cid in self._pair_of:
                raise DataError(f"{f}: case id {cid!r} also in {self._index[self._pair_of[cid].split][cid]} "
                                "(two pairs hold the same name: give them different splits or rename)")
            files[cid] = f
            self._pair_of[cid], self._stem[cid] = pair, stem
        if not files:
            return
        self._index.setdefault(pair.split, {}).update(files)
        if pair.masks is None:
            return
        layers = {name: self._mask_index(pair.masks / name) for name in self.class_names} \
            if self.task == "multilabel" else {"": self._mask_index(pair.masks)}
        stems = {self._stem[c] for c in files}
        for idx in layers.values():
            for stem, p in idx.items():
                if stem not in stems:
                    self.unmatched["masks without images"].append(str(p))
        for cid in files:
            found = {name: idx[self._stem[cid]] for name, idx in layers.items() if self._stem[cid] in idx}
            self._masks[cid] = found
            if len(found) < len(layers):
                self.unmatched["images without masks"].append(str(files[cid]))

    def _nothing_found(self) -> str:
        seen = sorted({Path(s).suffix.lower() or "(no ending)" for s in self.skipped})
        folders = [str(p.images) for p in self._pairs]
        what = (f"{len(self.skipped)} files skipped as not images ({', '.join(seen[:8])})" if self.skipped
                else f"looked in {', '.join(folders[:4])}" if folders
                else f"no folder named '{self.image_dir}' under {self.root} or its sub-folders "
                     f"(found {sorted(p.name for p in self.root.iterdir())[:8]})")
        hint = ("set data.reader.image_regex to a pattern that matches these names"
                if self.skipped and self._image_re is not None
                else "set data.reader.image_dir (or data.reader.pairs=[{images: <folder>, masks: <folder>, "
                     "split: train}])")
        return (f"{self.root}: no images found ({what}; readable: {', '.join(EXTENSIONS[:12])} ..., "
                f"DICOM series folders); {hint}")

    def _report_unmatched(self, policy: str) -> None:
        listed = {k: v for k, v in self.unmatched.items() if v}
        if not listed:
            return
        text = "; ".join(f"{len(v)} {k}: {', '.join(Path(p).name for p in v[:6])}{' ...' if len(v) > 6 else ''}"
                         for k, v in listed.items())
        msg = (f"{self.root}: {text} (mask names come from data.reader.mask_pattern={self.mask_pattern!r}"
               f"{'' if self._image_re is None else ', data.reader.image_regex'})")
        if policy == "error":
            raise DataError(msg)
        warnings.warn(msg, stacklevel=3)

    # ------------------------------------------------------------ interface
    def available_splits(self) -> list[str]:
        return list(self._index)

    def list_cases(self, split: str) -> list[str]:
        if split not in self._index:
            raise DataError(f"{self.root}: split '{split}' not found (found {self.available_splits()}); "
                            f"set data.train_split / data.test_split to one of these")
        return sorted(self._index[split])

    def has_labels(self, split: str) -> bool:
        return split in self._index and any(self._pair_of[c].masks is not None for c in self._index[split])

    def aliases(self, case_id: str) -> list[str]:
        """Names a split file may use for this case: the id, the stem, the image file name."""
        pair = self._pair_of.get(case_id)
        if pair is None:
            return [case_id]
        return [case_id, self._stem[case_id], self._index[pair.split][case_id].name]

    def _find(self, case_id: str) -> tuple[str, Path]:
        pair = self._pair_of.get(case_id)
        if pair is None:
            raise DataError(f"{self.root}: no image '{case_id}'")
        return pair.split, self._index[pair.split][case_id]

    def load_case(self, case_id: str) -> Case:
        split, path = self._find(case_id)
        arr, meta = read_array(path)
        if self.spatial_dims == 2:
            if arr.ndim == 3 and not is_volume(path):
                arr = arr[..., :3].transpose(2, 0, 1)
            elif arr.ndim == 2:
                arr = arr[None]
            else:
                raise DataError(f"{path}: a {arr.ndim}D array where the dataset's first image is 2D "
                                f"({self._index[split] and next(iter(self._index[split].values())).name})")
        else:
            if arr.ndim != 3:
                raise DataError(f"{path}: expected a 3D volume, got shape {arr.shape}")
            arr = arr[None]
        # 2D pictures (8/16-bit PNG, TIFF) to [0, 1] by their dtype; a volume's values are physical (CT in
        # Hounsfield units, stored as int16) and stay as they are, as in the nnU-Net reader
        image = np.ascontiguousarray(to_float(arr) if self.spatial_dims == 2 else arr.astype(np.float32))
        if not np.isfinite(image).all():
            raise DataError(f"{path}: image contains NaN or infinite values")
        mask = self._load_mask(case_id, image.shape[1:], meta.get("affine")) if self._pair_of[case_id].masks else None
        spacing = meta.get("spacing") if self.spatial_dims == 3 else None
        case = Case(case_id=case_id, image=image, mask=mask, spacing=spacing,
                    meta={"source": str(path), **({"affine": meta["affine"]} if "affine" in meta else {})})
        return case.validate(str(path))

    def _load_mask(self, case_id: str, shape: tuple[int, ...], affine) -> np.ndarray:
        pair, stem = self._pair_of[case_id], self._stem[case_id]
        found = {k: p for k, p in self._masks.get(case_id, {}).items() if p.exists()}  # deleted since indexing
        expected = self.mask_pattern.replace("{stem}", stem)
        if self.task == "multilabel":
            layers = []
            for name in self.class_names:
                p = found.get(name)
                if p is None:
                    raise DataError(f"{pair.masks}/{name}: no mask for {stem} (class {name}; expected {expected})")
                layers.append(self._binary(self._read_mask(p, shape, affine), p, lossy=lossy(p)))
            return np.stack(layers).astype(np.uint8)
        p = found.get("")
        if p is None:
            raise DataError(f"{pair.masks}: no mask for {stem} (expected {expected}; "
                            "set data.reader.mask_pattern, e.g. '{stem}_mask.png')")
        raw = self._read_mask(p, shape, affine)
        if self.task == "binary":
            return self._binary(raw, p, lossy=lossy(p))
        return self._indices(raw, p)

    def _read_mask(self, path: Path, shape: tuple[int, ...], affine=None) -> np.ndarray:
        arr, meta = read_array(path)
        if arr.ndim == len(shape) + 1 and self.spatial_dims == 2:
            # colour-saved masks: all channels must agree (a colour-coded mask is not a label map)
            ch = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
            if ch.shape[-1] > 1 and not (ch == ch[..., :1]).all():
                raise DataError(f"{path}: an RGB mask whose channels differ (a colour-coded mask?); "
                                "save it as a single-channel label image")
            arr = arr[..., 0]
        if self.spatial_dims == 3:
            arr = align_mask(arr, meta.get("affine"), affine)
        if np.issubdtype(arr.dtype, np.floating) and (not np.isfinite(arr).all() or not np.all(arr == np.round(arr))):
            raise DataError(f"{path}: mask has non-integer or NaN values")
        arr = arr.astype(np.int64)
        if arr.shape != tuple(shape):
            if not self.allow_resize:
                raise DataError(f"{path}: mask size {arr.shape} differs from its image {tuple(shape)} "
                                f"(set data.reader.allow_resize=true to resize masks with nearest neighbour)")
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
