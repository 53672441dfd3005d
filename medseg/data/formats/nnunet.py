"""Reader for nnU-Net v2 raw datasets (Isensee et al. 2021), as nnU-Net's ``dataset_format.md`` defines them::

    DatasetXXX_Name/dataset.json
    DatasetXXX_Name/imagesTr/<case>_0000<file_ending>  ..  <case>_000K<file_ending>   one file per channel
    DatasetXXX_Name/labelsTr/<case><file_ending>
    DatasetXXX_Name/imagesTs/<case>_0000<file_ending>  (optional; labelsTs/ if you have test labels)
    DatasetXXX_Name/splits_final.json                 (optional: nnU-Net's folds, copied from nnUNet_preprocessed)

``dataset.json`` keys used: ``channel_names`` (``{"0": "T2", "1": "ADC"}``; the channel count),
``labels`` (``{"background": 0, "PZ": 1, "TZ": 2}``, consecutive integers; or **region** labels
``{"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3}`` with
``regions_class_order``), ``file_ending`` (``.nii.gz``, ``.nrrd``, ``.mha``, ``.png``, ``.bmp``, ``.tif``),
``numTraining`` (checked). An ``ignore`` label (nnU-Net's sparse annotations) is read as
background, with a warning: medseg's losses have no ignore label.

Tasks: integer labels with one foreground class -> ``binary``, more -> ``multiclass`` (the label
value is the class index); region labels -> ``multilabel``, channel ``k`` = the voxels whose label
is in region ``k`` (nnU-Net's region-based training). 2D datasets (PNG...) follow nnU-Net's
NaturalImage2DIO: an RGB file counts as three channels. 3D arrays keep the file's index order
(i, j, k) with its affine, so predictions written with :mod:`medseg.inference.writers` overlay the
source and can be scored by ``nnUNetv2_evaluate_folder``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.files import PILLOW, align_mask, read_array, to_float
from medseg.errors import DataError


def channel_names(spec: dict, src: Path, key: str, alias: str) -> list[str]:
    """The channel names of a dataset.json, in channel order, from ``key`` (or its ``alias``: nnU-Net v2
    says ``channel_names``, the Decathlon ``modality``)."""
    channels = spec.get(key) or spec.get(alias)
    if not isinstance(channels, dict) or not channels:
        raise DataError(f"{src}: no '{key}' mapping (e.g. {{\"0\": \"CT\"}})")
    return [str(channels[k]) for k in sorted(channels, key=lambda c: int(c))]


def read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    if not path.is_file():
        raise DataError(f"{root}: no dataset.json (found {sorted(p.name for p in root.iterdir())[:8]}); point "
                        "data.root at the DatasetXXX_Name (nnU-Net) or TaskXX_Name (Decathlon) folder")
    try:
        spec = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(spec, dict) or "labels" not in spec:
        raise DataError(f"{path}: no 'labels' mapping")
    return spec


class LabelMap:
    """nnU-Net / Decathlon ``labels`` -> medseg's task, class names and a raw-label -> mask function."""

    def __init__(self, labels: dict, source: Path, regions_class_order: list | None = None) -> None:
        self.source = source
        self.ignore: int | None = None
        self.regions_class_order: list[int] | None = None
        items = {str(k): v for k, v in labels.items()}
        # Decathlon writes {"0": "background", "1": "edema"}; nnU-Net v2 {"background": 0, "edema": 1}
        if all(re.fullmatch(r"\d+", k) for k in items) and all(isinstance(v, str) for v in items.values()):
            items = {v: int(k) for k, v in items.items()}
        self.regions = any(isinstance(v, (list, tuple)) for v in items.values())
        if "ignore" in items:
            self.ignore = int(items.pop("ignore"))
        fg = {k: v for k, v in items.items() if not (isinstance(v, int) and v == 0)}
        if not fg:
            raise DataError(f"{source}: 'labels' has no foreground label")
        if self.regions:
            self.task = "multilabel"
            self.region_values = [[int(x) for x in (v if isinstance(v, (list, tuple)) else [v])] for v in fg.values()]
            self.class_names = tuple(fg)
            if regions_class_order is None:
                raise DataError(f"{source}: region labels need 'regions_class_order' (nnU-Net requires it)")
            self.regions_class_order = [int(x) for x in regions_class_order]
            if len(self.regions_class_order) != len(self.region_values):
                raise DataError(f"{source}: regions_class_order has {len(self.regions_class_order)} entries for "
                                f"{len(self.region_values)} regions")
            self.allowed = sorted({0, *(x for r in self.region_values for x in r)})
        else:
            try:
                by_value = sorted((int(v), k) for k, v in fg.items())
            except (TypeError, ValueError) as exc:
                raise DataError(f"{source}: label values must be integers or lists of integers ({exc})") from exc
            values = [v for v, _ in by_value]
            if values != list(range(1, len(values) + 1)):
                raise DataError(f"{source}: labels must be consecutive integers 1..K (nnU-Net's rule), got {values}")
            self.class_names = tuple(k for _, k in by_value)
            self.task = "binary" if len(values) == 1 else "multiclass"
            self.allowed = [0, *values]
        self._ignore_warned = False

    def mask(self, seg: np.ndarray, path: Path, bad: Callable[[str], None]) -> np.ndarray:
        """Raw label array -> medseg mask (indices, or multi-hot regions)."""
        if np.issubdtype(seg.dtype, np.floating):
            if not np.isfinite(seg).all() or not np.all(seg == np.round(seg)):
                raise DataError(f"{path}: label map has non-integer or NaN values")
        seg = seg.astype(np.int64)
        if self.ignore is not None and (seg == self.ignore).any():
            if not self._ignore_warned:
                warnings.warn(f"{path}: 'ignore' label {self.ignore} read as background (medseg has no "
                              "ignore-label loss; further cases: silently)", stacklevel=3)
                self._ignore_warned = True
            seg = np.where(seg == self.ignore, 0, seg)
        extra = sorted(set(np.unique(seg).tolist()) - set(self.allowed))
        if extra:
            bad(f"{path}: label values {extra[:8]} not in dataset.json labels {self.allowed}")
            seg = np.where(np.isin(seg, self.allowed), seg, 0)
        if self.regions:
            return np.stack([np.isin(seg, r) for r in self.region_values]).astype(np.uint8)
        return seg.astype(np.uint8)

    def to_labels(self, pred: np.ndarray) -> np.ndarray:
        """Boolean ``(K, *spatial)`` prediction -> a label map with the dataset's values (regions:
        nnU-Net's ``regions_class_order``: later regions overwrite earlier ones)."""
        out = np.zeros(pred.shape[1:], np.uint8)
        values = self.regions_class_order if self.regions_class_order is not None else range(1, len(self.class_names) + 1)
        for k, v in enumerate(values):
            out[np.asarray(pred[k], bool)] = v
        return out


class NnunetReader(SegmentationReader):
    """Read an nnU-Net v2 raw dataset folder (``DatasetXXX_Name``).

    Splits: ``training`` (``imagesTr`` + ``labelsTr``) and ``test`` (``imagesTs``, labelled only with
    ``labelsTs``). A ``splits_final.json`` in the folder is used as the train/val folds
    (``data.fold`` picks one; ``medseg-kfold folds=5`` runs them all); ``data.splits`` overrides it.
    """

    def __init__(self, root: str | Path, strict: bool = True, use_splits_file: bool = True) -> None:
        super().__init__(root, strict)
        self.spec = read_dataset_json(self.root)
        src = self.root / "dataset.json"
        self.channel_names = channel_names(self.spec, src, "channel_names", "modality")
        self.file_ending = str(self.spec.get("file_ending") or ".nii.gz")
        self.labels = LabelMap(self.spec["labels"], src, self.spec.get("regions_class_order"))
        self.task, self.class_names = self.labels.task, self.labels.class_names
        self.in_channels = len(self.channel_names)
        self._cases: dict[str, dict[str, list[Path]]] = {}
        self.incomplete: list[str] = []
        for split, folder in (("training", "imagesTr"), ("test", "imagesTs")):
            cases = self._scan(self.root / folder)
            if cases:
                self._cases[split] = cases
        if "training" not in self._cases:
            seen = sorted(p.name for p in (self.root / "imagesTr").iterdir())[:5] if (self.root / "imagesTr").is_dir() else []
            raise DataError(f"{self.root / 'imagesTr'}: no training images <case>_0000{self.file_ending} "
                            f"(file_ending {self.file_ending!r} from dataset.json; saw {seen or 'no imagesTr folder'})")
        n = self.spec.get("numTraining")
        if n is not None and int(n) != len(self._cases["training"]):
            warnings.warn(f"{src}: numTraining={n} but imagesTr holds {len(self._cases['training'])} cases",
                          stacklevel=2)
        self.spatial_dims = 2 if self.file_ending.lower() in PILLOW and self.file_ending.lower() not in (".tif", ".tiff") \
            else self._dims_of_first()
        sp = self.root / "splits_final.json"
        self.splits_file = str(sp) if use_splits_file and sp.is_file() else None

    def _scan(self, folder: Path) -> dict[str, list[Path]]:
        if not folder.is_dir():
            return {}
        ending = self.file_ending
        pat = re.compile(rf"(?P<case>.+)_(?P<ch>\d{{4}}){re.escape(ending)}")
        found: dict[str, dict[int, Path]] = {}
        for f in sorted(folder.iterdir()):
            if f.name.startswith("."):
                continue
            m = pat.fullmatch(f.name)
            if m:
                found.setdefault(m.group("case"), {})[int(m.group("ch"))] = f
        out: dict[str, list[Path]] = {}
        # channel files per case: as many as the most complete case has (an RGB PNG holds 3 channels in one file)
        n_files = max((max(ch) + 1 for ch in found.values()), default=0)
        for case, chans in found.items():
            files = [chans.get(i) for i in range(n_files)]
            if None in files:
                missing = [f"{case}_{i:04d}{ending}" for i, p in enumerate(files) if p is None]
                self.incomplete.append(f"{folder / missing[0]}")
                self.bad(f"{folder}: case {case} lacks channel file(s) {missing}")
                continue
            out[case] = [p for p in files if p is not None]  # all of them
        return out

    def _dims_of_first(self) -> int:
        first = next(iter(self._cases["training"].values()))[0]
        arr, _ = read_array(first)
        return 3 if arr.ndim == 3 and arr.shape[-1] not in (3, 4) else 2

    def available_splits(self) -> list[str]:
        return list(self._cases)

    def list_cases(self, split: str) -> list[str]:
        if split not in self._cases:
            raise DataError(f"{self.root}: split '{split}' not found (found {self.available_splits()}); "
                            "set data.train_split / data.test_split")
        return sorted(self._cases[split])

    def has_labels(self, split: str) -> bool:
        return split == "training" or (split == "test" and (self.root / "labelsTs").is_dir())

    def _split_of(self, case_id: str) -> str:
        for split, cases in self._cases.items():
            if case_id in cases:
                return split
        raise DataError(f"{self.root}: no case '{case_id}'")

    def label_path(self, case_id: str) -> Path:
        folder = "labelsTr" if self._split_of(case_id) == "training" else "labelsTs"
        return self.root / folder / f"{case_id}{self.file_ending}"

    def load_case(self, case_id: str) -> Case:
        split = self._split_of(case_id)
        chans: list[np.ndarray] = []
        meta0: dict = {}
        shape = None
        for f in self._cases[split][case_id]:
            arr, meta = read_array(f)
            if self.spatial_dims == 2:
                arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr[..., :3], -1, 0)
            else:
                if arr.ndim != 3:
                    raise DataError(f"{f}: expected a 3D volume, got shape {arr.shape}")
                arr = arr[None]
            if shape is not None and arr.shape[1:] != shape:
                raise DataError(f"{f}: shape {arr.shape[1:]} differs from channel 0 {shape}")
            shape = arr.shape[1:]
            meta0 = meta0 or meta
            chans.append(to_float(arr) if self.spatial_dims == 2 else arr.astype(np.float32))
        image = np.ascontiguousarray(np.concatenate(chans))
        if image.shape[0] != self.in_channels:
            raise DataError(f"{self._cases[split][case_id][0]}: {image.shape[0]} channels, dataset.json "
                            f"channel_names lists {self.in_channels} ({', '.join(self.channel_names)})")
        if not np.isfinite(image).all():
            raise DataError(f"{self._cases[split][case_id][0]}: image contains NaN or infinite values")
        mask = None
        if self.has_labels(split):
            lp = self.label_path(case_id)
            if not lp.is_file():
                raise DataError(f"{lp}: label file of case {case_id} not found")
            seg, lmeta = read_array(lp)
            if seg.ndim == image.ndim and self.spatial_dims == 2:
                seg = seg[..., 0]
            if self.spatial_dims == 3:
                seg = align_mask(seg, lmeta.get("affine"), meta0.get("affine"))
            if seg.shape != image.shape[1:]:
                raise DataError(f"{lp}: label shape {seg.shape} differs from the image {image.shape[1:]}")
            mask = self.labels.mask(seg, lp, self.bad)
        case = Case(case_id, image, mask=mask, spacing=meta0.get("spacing") if self.spatial_dims == 3 else None,
                    meta={"source": str(self._cases[split][case_id][0]), "file_ending": self.file_ending,
                          **({"affine": meta0["affine"]} if "affine" in meta0 else {})})
        return case.validate(str(self._cases[split][case_id][0]))
