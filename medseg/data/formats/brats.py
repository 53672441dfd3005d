"""Reader for BraTS of every year (Menze et al. 2015; Bakas et al. 2017; Baid et al. 2021), as distributed.

The naming scheme is detected per case folder from its file names (``naming: auto``):

=============  ==========================================================  ==============================
scheme         files (one case folder)                                     labels
=============  ==========================================================  ==============================
``2013``       ``Flair_subtrMeanDivStd.nii.gz``, ``T1_``, ``T1c_``, ``T2_``,    0, 1 necrosis, 2 oedema,
(2013/2015)    ``OT.nii.gz`` / ``OTMultiClass.nii.gz``, ``brainmask.nii.gz``;  3 non-enhancing (-> 1),
               2015: ``VSD.Brain.XX.O.MR_Flair.54512/....mha``, ``...O.OT...``  4 enhancing
``2018``       ``<case>_flair.nii.gz``, ``_t1``, ``_t1ce``, ``_t2``, ``_seg``        0, 1, 2, 4 enhancing
(2018-2021)    (``BraTS20_Training_001``, ``BraTS2021_00000``...)
``2023``       ``BraTS-GLI-00000-000-t2f.nii.gz``, ``-t1n``, ``-t1c``, ``-t2w``,     0, 1, 2, **3 enhancing**
(2023+)        ``-seg`` (also ``BraTS-MEN``, ``-PED``, ``-SSA``, ``-MET``)            (-> 4)
=============  ==========================================================  ==============================

Case folders are found anywhere under ``root`` (``MICCAI_BraTS2020_TrainingData/BraTS20_Training_001``,
``BraTS2021_00000`` directly under the root, ``BRATS2015_Training/HGG/brats_2013_pat0001_1``...); a
folder whose path contains ``valid`` is the ``validation`` split, ``test`` the ``test`` split,
every other the ``training`` split. ``patterns`` (a regex per modality / ``seg`` / ``brainmask``,
searched in the file names) overrides the detected names.

Modalities are named as in 2018-2021 (``flair, t1, t1ce, t2``) whatever the year. The image is
``(C, *shape)``, in the file's own index order (no reorientation), so predictions written back with
``Case.meta["affine"]`` line up with the source volumes. Label modes:

* ``regions`` (multi-label, the BraTS evaluation): whole tumour, tumour core, enhancing tumour.
* ``labels`` (multi-class): necrotic core, oedema, enhancing tumour -> indices 1..3.

Background (``Case.roi``, the brain): a brain-mask file when the case has one (``brainmask``),
else the voxels where any modality differs from its most frequent border value (0 for
skull-stripped 2017+ data, -3.55 or so for the z-scored 2013 volumes). ``meta["background_rule"]``
and the log say which rule was used; ``CropToForeground`` and ``ZScore(within_roi=True)`` then work
inside the brain for every year.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.files import NIFTI, VOLUME, read_array, split_ext
from medseg.data.formats.nifti import load_nifti
from medseg.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MODALITIES = ("flair", "t1", "t1ce", "t2")
SPLIT_FOLDERS = {"training": "MICCAI_BraTS2020_TrainingData", "validation": "MICCAI_BraTS2020_ValidationData"}
REGIONS = ("whole_tumour", "tumour_core", "enhancing_tumour")
LABELS = ("necrotic_core", "oedema", "enhancing_tumour")
#: file-name tokens of each modality per naming scheme
SCHEMES: dict[str, dict[str, tuple[str, ...]]] = {
    "2013": {"flair": ("flair",), "t1": ("t1",), "t1ce": ("t1c",), "t2": ("t2",), "seg": ("ot", "otmulticlass")},
    "2018": {"flair": ("flair",), "t1": ("t1",), "t1ce": ("t1ce",), "t2": ("t2",), "seg": ("seg", "segm")},
    "2023": {"flair": ("t2f",), "t1": ("t1n",), "t1ce": ("t1c",), "t2": ("t2w",), "seg": ("seg",)},
}
SCHEME_NAMES = {"2013": "BraTS 2013/2015", "2018": "BraTS 2018-2021", "2023": "BraTS 2023+"}
_BRAINMASK = re.compile(r"brain[_-]?mask", re.IGNORECASE)
_TOKENS = re.compile(r"[._\-\s]+")


def regions_from_labels(seg: np.ndarray) -> np.ndarray:
    """BraTS labels {0,1,2,4} -> uint8 multi-hot ``(3, ...)``: whole tumour, tumour core, enhancing."""
    return np.stack([np.isin(seg, (1, 2, 4)), np.isin(seg, (1, 4)), seg == 4]).astype(np.uint8)


def _tokens(path: Path) -> set[str]:
    stem = split_ext(path)[0] or path.name
    return {t.lower() for t in _TOKENS.split(stem) if t}


def detect_scheme(files: Sequence[Path]) -> str:
    """``2013``, ``2018`` or ``2023`` from the file names of one case folder."""
    tokens = set().union(*(_tokens(f) for f in files)) if files else set()
    if tokens & {"t2f", "t1n", "t2w"}:
        return "2023"
    if tokens & {"ot", "otmulticlass", "subtrmeandivstd"} or any(_BRAINMASK.search(f.name) for f in files) \
            or "t1c" in tokens and "t1ce" not in tokens:
        return "2013"
    return "2018"


def border_background(volume: np.ndarray) -> float:
    """The most frequent value on the six faces of a volume (the background of a brain MRI)."""
    faces = np.concatenate([np.take(volume, i, axis=a).ravel() for a in range(volume.ndim) for i in (0, -1)])
    values, counts = np.unique(faces, return_counts=True)
    return float(values[np.argmax(counts)])


class BratsReader(SegmentationReader):
    """Read BraTS cases of any year.

    Args:
        root: a folder holding BraTS case folders at any depth (the challenge's training folder, or
            its parent).
        modalities: any subset of ``flair, t1, t1ce, t2`` (2023: t2f, t1n, t1c, t2w), in channel order.
        label_mode: ``regions`` (multi-label WT/TC/ET) or ``labels`` (multi-class -> 0..3).
        strict: raise on bad files (``True``) or warn and skip them.
        naming: ``auto`` (per case folder), or force ``2013``, ``2018`` or ``2023``.
        patterns: ``{modality | seg | brainmask: regex}`` searched (case-insensitive) in file names,
            overriding the scheme's names, e.g. ``{flair: "_FLAIR_reg", seg: "_labels"}``.
        brain_mask: use a brain-mask file as the background when the case has one.
    """

    #: what ``Case.roi`` is (named in reports: "metrics inside each case's ...")
    roi_description = "brain mask (a brain-mask file, else the voxels that differ from the background value)"

    spatial_dims = 3

    def __init__(
        self,
        root: str | Path,
        modalities: Sequence[str] = MODALITIES,
        label_mode: str = "regions",
        strict: bool = True,
        naming: str = "auto",
        patterns: Mapping[str, str] | None = None,
        brain_mask: bool = True,
    ) -> None:
        super().__init__(root, strict)
        mods = [str(m).lower() for m in modalities]
        aliases = {v[0]: k for k, v in SCHEMES["2023"].items() if k != "seg"}
        mods = [aliases.get(m, m) for m in mods]
        unknown = [m for m in mods if m not in MODALITIES]
        if unknown or not mods:
            raise ConfigError(f"data.reader.modalities must be a non-empty subset of {MODALITIES}, "
                              f"got {list(modalities)}")
        if label_mode not in ("regions", "labels"):
            raise ConfigError(f"data.reader.label_mode must be regions or labels, got {label_mode!r}")
        if str(naming) not in ("auto", *SCHEMES):
            raise ConfigError(f"data.reader.naming must be auto, 2013, 2018 or 2023, got {naming!r}")
        self.modalities, self.label_mode, self.naming = mods, label_mode, str(naming)
        self.brain_mask = brain_mask
        self.patterns: dict[str, re.Pattern] = {}
        for key, rx in (patterns or {}).items():
            if key not in (*MODALITIES, "seg", "brainmask"):
                raise ConfigError(f"data.reader.patterns: unknown key {key!r} (use {', '.join(MODALITIES)}, "
                                  "seg, brainmask)")
            try:
                self.patterns[key] = re.compile(str(rx), re.IGNORECASE)
            except re.error as exc:
                raise ConfigError(f"data.reader.patterns.{key}={rx!r}: invalid regex ({exc})") from exc
        self.task = "multilabel" if label_mode == "regions" else "multiclass"
        self.class_names = REGIONS if label_mode == "regions" else LABELS
        self.in_channels = len(mods)
        self._rules: Counter = Counter()  # private: not part of the cache fingerprint
        self._dirs: dict[str, dict[str, Path]] = {}
        for folder in self._case_folders():
            split = self._split_from_path(folder)
            if folder.name in {c for d in self._dirs.values() for c in d}:
                raise DataError(f"{folder}: two BraTS case folders named {folder.name}")
            self._dirs.setdefault(split, {})[folder.name] = folder
        if not any(self._dirs.values()):
            raise DataError(f"{self.root}: no BraTS case folders found (looked for folders of .nii.gz / .mha "
                            f"volumes at any depth: {SPLIT_FOLDERS['training']}/BraTS20_Training_NNN/*.nii.gz, "
                            f"BraTS2021_NNNNN/, BraTS-GLI-NNNNN-NNN/, brats_2013_patNNNN_1/; found "
                            f"{sorted(p.name for p in self.root.iterdir())[:8]}); point data.root at that folder")
        self.schemes = Counter(self.scheme_of(c) for d in self._dirs.values() for c in d)
        log.info("%s: %s", self.root, ", ".join(f"{n} {SCHEME_NAMES[s]} cases" for s, n in self.schemes.items()))

    # ----------------------------------------------------------- discovery
    @staticmethod
    def _volumes(folder: Path) -> list[Path]:
        return [f for f in folder.iterdir() if f.is_file() and split_ext(f)[1] in VOLUME]

    def _is_case(self, folder: Path) -> bool:
        if self._volumes(folder):
            return True
        subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        # BraTS 2015: one sub-folder per modality, each holding one .mha
        return len(subs) >= 2 and all(len(self._volumes(s)) == 1 and not any(x.is_dir() for x in s.iterdir())
                                      for s in subs)

    def _case_folders(self) -> list[Path]:
        out: list[Path] = []
        frontier = [self.root]
        for _ in range(4):
            nxt: list[Path] = []
            for d in frontier:
                for p in sorted(d.iterdir()):
                    if not p.is_dir() or p.name.startswith("."):
                        continue
                    (out if self._is_case(p) else nxt).append(p)
            frontier = nxt
        return out

    def _split_from_path(self, folder: Path) -> str:
        text = " ".join(folder.relative_to(self.root).parts[:-1]).lower()
        return "validation" if "valid" in text else "test" if re.search(r"(^|[^a-z])test", text) else "training"

    def _files(self, case_id: str) -> list[Path]:
        folder = self.case_dir(case_id)
        files = self._volumes(folder)
        if not files:
            files = [v for s in sorted(folder.iterdir()) if s.is_dir() for v in self._volumes(s)]
        return sorted(files)

    @property
    def background_rules(self) -> Counter:
        """How many loaded cases used each background rule (for ``medseg-inspect``)."""
        return self._rules

    def scheme_of(self, case_id: str) -> str:
        return self.naming if self.naming != "auto" else detect_scheme(self._files(case_id))

    # ------------------------------------------------------------ interface
    def available_splits(self) -> list[str]:
        return [s for s, cases in self._dirs.items() if cases]

    def list_cases(self, split: str) -> list[str]:
        if split not in self._dirs:
            raise DataError(f"{self.root}: BraTS split '{split}' not found (found {self.available_splits()}); "
                            "set data.train_split / data.test_split to one of these")
        return sorted(self._dirs[split])

    def has_labels(self, split: str) -> bool:
        if split == "training":
            return True
        return split in self._dirs and all(self._find(c, "seg") is not None for c in self._dirs[split])

    def group_of(self, case_id: str) -> str:
        """2023+ ids end in a time point (``BraTS-GLI-00000-000``): the patient is the group."""
        m = re.fullmatch(r"(BraTS-[A-Z]+-\d+)-\d+", case_id)
        return m.group(1) if m else case_id

    def case_dir(self, case_id: str) -> Path:
        for cases in self._dirs.values():
            if case_id in cases:
                return cases[case_id]
        raise DataError(f"{self.root}: no BraTS case '{case_id}'")

    def _find(self, case_id: str, key: str) -> Path | None:
        files = self._files(case_id)
        if key in self.patterns:
            hits = [f for f in files if self.patterns[key].search(f.name)]
        elif key == "brainmask":
            hits = [f for f in files if _BRAINMASK.search(f.name)]
        else:
            names = set(SCHEMES[self.scheme_of(case_id)][key])
            hits = [f for f in files if _tokens(f) & names and not _BRAINMASK.search(f.name)]
        return min(hits) if hits else None

    def paths(self, case_id: str) -> dict[str, Path | None]:
        """``{modality: path, "seg": path or None, "brainmask": path or None}``."""
        out: dict[str, Path | None] = {}
        scheme = self.scheme_of(case_id)
        for mod in self.modalities:
            p = self._find(case_id, mod)
            if p is None:
                expected = (self.patterns[mod].pattern if mod in self.patterns
                            else f"a file name with the token {SCHEMES[scheme][mod][0]!r}")
                raise DataError(f"{self.case_dir(case_id)}: case {case_id} has no {mod} volume "
                                f"({SCHEME_NAMES[scheme]} naming: expected {expected}; found "
                                f"{[f.name for f in self._files(case_id)]}; set data.reader.patterns.{mod})")
            out[mod] = p
        out["seg"] = self._find(case_id, "seg")
        out["brainmask"] = self._find(case_id, "brainmask") if self.brain_mask else None
        return out

    def _read(self, path: Path) -> tuple[np.ndarray, dict]:
        if split_ext(path)[1] in NIFTI:
            data, affine, spacing = load_nifti(path)
            meta = {"affine": affine, "spacing": spacing}
        else:  # BraTS 2015 .mha
            data, meta = read_array(path)
        if data.ndim != 3:
            raise DataError(f"{path}: expected a 3D volume, got shape {data.shape}")
        return data, meta

    def load_case(self, case_id: str) -> Case:
        paths = self.paths(case_id)
        channels: list[np.ndarray] = []
        affine, spacing = None, None
        for mod in self.modalities:
            path = paths[mod]
            assert path is not None  # paths() raised otherwise
            data, meta = self._read(path)
            data = data.astype(np.float32)
            if not np.isfinite(data).all():
                n_bad = int((~np.isfinite(data)).sum())
                self.bad(f"{paths[mod]}: {n_bad} NaN/inf voxels")
                data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
            if channels and data.shape != channels[0].shape:
                raise DataError(f"{paths[mod]}: shape {data.shape} differs from "
                                f"{Path(str(paths[self.modalities[0]])).name} {channels[0].shape}")
            channels.append(data)
            if affine is None:
                affine, spacing = meta.get("affine"), meta.get("spacing")
        image = np.stack(channels)
        roi, rule = self._brain(image, paths["brainmask"])
        self._rules[rule.split(" (")[0]] += 1
        if sum(self._rules.values()) == 1:
            log.info("%s: background of %s: %s", self.root, case_id, rule)
        mask = None
        scheme = self.scheme_of(case_id)
        if paths["seg"] is not None:
            mask = self._read_seg(paths["seg"], image.shape[1:], scheme)
        elif self._split_of(case_id) == "training":
            raise DataError(f"{self.case_dir(case_id)}: training case {case_id} has no segmentation "
                            f"(expected {case_id}_seg.nii.gz or, {SCHEME_NAMES[scheme]}, a file with the token "
                            f"{SCHEMES[scheme]['seg'][0]!r}; set data.reader.patterns.seg)")
        case = Case(case_id=case_id, image=image, mask=mask, roi=roi, spacing=spacing, group=self.group_of(case_id),
                    meta={"source": str(paths[self.modalities[0]]), "affine": affine,
                          "modalities": list(self.modalities), "naming": SCHEME_NAMES[scheme],
                          "background_rule": rule,
                          "seg": str(paths["seg"]) if paths["seg"] else None})
        return case.validate(str(self.case_dir(case_id)))

    def _brain(self, image: np.ndarray, mask_path: Path | None) -> tuple[np.ndarray, str]:
        if mask_path is not None:
            m, _ = self._read(mask_path)
            if m.shape != image.shape[1:]:
                raise DataError(f"{mask_path}: brain mask shape {m.shape} differs from the images {image.shape[1:]}")
            brain = np.asarray(m) > 0
            if brain.any():
                return brain, f"brain mask file {mask_path.name}"
            warnings.warn(f"{mask_path}: empty brain mask; using the border value rule", stacklevel=3)
        bg = [border_background(c) for c in image]
        brain = np.any(image != np.asarray(bg, np.float32).reshape((-1,) + (1,) * (image.ndim - 1)), axis=0)
        if all(b == 0 for b in bg):
            return brain, "zero background (most frequent border value 0)"
        return brain, f"most frequent border value ({', '.join(f'{b:.4g}' for b in bg)})"

    def _split_of(self, case_id: str) -> str:
        return next(s for s, cases in self._dirs.items() if case_id in cases)

    def _read_seg(self, path: Path, shape: tuple[int, ...], scheme: str = "2018") -> np.ndarray:
        seg, _ = self._read(path)
        if seg.shape != shape:
            raise DataError(f"{path}: segmentation shape {seg.shape} differs from the images {shape}")
        if np.issubdtype(seg.dtype, np.floating):
            if not np.isfinite(seg).all():
                raise DataError(f"{path}: segmentation contains NaN")
            if not np.all(seg == np.round(seg)):
                raise DataError(f"{path}: segmentation has non-integer values")
        seg = seg.astype(np.int16)
        values = set(np.unique(seg).tolist())
        if scheme == "2023":
            extra = sorted(values - {0, 1, 2, 3})
            if extra:
                self.bad(f"{path}: label values {extra} outside the BraTS 2023 class map {{0, 1, 2, 3}}")
                seg[~np.isin(seg, (0, 1, 2, 3))] = 0
            seg[seg == 3] = 4  # 2023+: 3 is the enhancing tumour
            values = set(np.unique(seg).tolist())
        elif 3 in values:
            if scheme == "2018":
                warnings.warn(f"{path}: label 3 (pre-2017 BraTS 'non-enhancing core') mapped to 1", stacklevel=2)
            seg[seg == 3] = 1  # 2013/2015: non-enhancing tumour is part of the tumour core
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
