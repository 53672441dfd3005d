"""Reader for JSRT chest radiographs (Shiraishi et al. 2000) with SCR lung masks (van Ginneken et
al. 2006), in the layouts they are distributed in:

* ``scr`` (the originals)::

      All247images/JPCLN001.IMG ...       raw, no header, 2048x2048, 12-bit values, big-endian uint16
      scratch/fold1/masks/left lung/JPCLN001.gif, right lung/JPCLN001.gif   (1024x1024, 0/255)
      scratch/fold2/masks/...

  The SCR masks are at half the image resolution; the image is block-averaged 2x2 to the masks'
  1024x1024 (the SCR protocol), never the other way round. JSRT stores optical density (high =
  dark), so the image is inverted to the usual display (``invert``). The masks' folder may be any
  ``<name>/fold1/masks`` (``scratch``, ``scr``, ``SCR``...).
* ``png``: the 128x128 teaching variant, ``org/<name>.png`` + ``label/<name>.png``.
* ``folder``: ``images/`` + ``masks/``, where masks may come at another resolution than their
  images (resized with nearest neighbour, with a warning).

Splits: ``all`` always; ``fold1`` / ``fold2`` in the SCR layout. The predecessor project's protocol is a random
7:3 train/test split of ``all`` (``conf/data/jsrt.yaml``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.folder import FolderReader
from medseg.errors import DataError
from medseg.utils.io import read_image

LUNGS = ("right lung", "left lung")


def read_jsrt_raw(path: Path) -> np.ndarray:
    """A JSRT ``.IMG`` file -> ``(N, N)`` uint16 raw values (big-endian on disk, 12 bits used)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = np.fromfile(path, dtype=">u2")
    side = int(round(np.sqrt(raw.size)))
    if raw.size == 0 or side * side != raw.size or path.stat().st_size != 2 * raw.size:
        raise DataError(f"{path}: {path.stat().st_size} bytes is not a square 16-bit image "
                        f"(JSRT is 2048x2048 = 8388608 bytes): truncated or not JSRT")
    return raw.reshape(side, side).astype(np.uint16)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape
    return image.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


class JSRTReader(SegmentationReader):
    """Read JSRT lungs in any of the three layouts (auto-detected).

    Args:
        root: the dataset folder.
        layout: ``auto``, ``scr``, ``png`` or ``folder``.
        lungs: ``union`` (binary "lung") or ``separate`` (multi-class right lung = 1, left lung = 2;
            right/left are the patient's, as SCR names them).
        invert: ``scr`` only: show air dark and bone bright (JSRT stores optical density).
        strict: raise on bad files (``True``) or warn and skip them.
    """

    in_channels = 1

    def __init__(self, root: str | Path, layout: str = "auto", lungs: str = "union", invert: bool = True,
                 strict: bool = True) -> None:
        super().__init__(root, strict)
        if lungs not in ("union", "separate"):
            raise ValueError(f"lungs must be union or separate, got {lungs!r}")
        self.lungs, self.invert = lungs, invert
        self.task = "binary" if lungs == "union" else "multiclass"
        self.class_names = ("lung",) if lungs == "union" else LUNGS
        self.layout = self._detect() if layout == "auto" else layout
        self._folder: FolderReader | None = None
        if self.layout in ("png", "folder"):
            if lungs != "union":
                raise ValueError(f"lungs=separate needs the SCR layout (the {self.layout} layout has one lung mask)")
            dirs = ("org", "label") if self.layout == "png" else ("images", "masks")
            self._folder = FolderReader(self.root, classes=("lung",), task="binary", image_dir=dirs[0],
                                        mask_dir=dirs[1], allow_resize=True, strict=strict)
        elif self.layout == "scr":
            self._images = {p.stem: p for p in sorted((self.root / "All247images").glob("*.IMG"))}
            if not self._images:
                raise DataError(f"{self.root}/All247images: no JSRT .IMG files")
            self._folds = {}
            for fold in ("fold1", "fold2"):
                found = sorted(self.root.glob(f"*/{fold}/masks/left lung")) + \
                    sorted(self.root.glob(f"{fold}/masks/left lung"))
                if found:
                    self._folds[fold] = found[0].parent
            if not self._folds:
                raise DataError(f"{self.root}: no SCR masks (expected scratch/fold1/masks/left lung/*.gif)")
        else:
            raise ValueError(f"layout must be auto, scr, png or folder, got {layout!r}")

    def _detect(self) -> str:
        if (self.root / "All247images").is_dir():
            return "scr"
        if (self.root / "org").is_dir():
            return "png"
        if (self.root / "images").is_dir():
            return "folder"
        raise DataError(f"{self.root}: not a JSRT layout (expected All247images/ + scratch/foldN/masks, "
                        f"org/ + label/, or images/ + masks/; {self.seen()}); point data.root at that folder or set "
                        f"data.reader.layout")

    # ------------------------------------------------------------- listing
    def available_splits(self) -> list[str]:
        if self._folder is not None:
            return self._folder.available_splits()
        return ["all"] + list(self._folds)

    def list_cases(self, split: str) -> list[str]:
        if self._folder is not None:
            return self._folder.list_cases(split)
        if split == "all":
            return sorted(c for f in self._folds for c in self._fold_cases(f))
        if split not in self._folds:
            raise DataError(f"{self.root}: SCR split '{split}' not found (found {self.available_splits()})")
        return self._fold_cases(split)

    def _fold_cases(self, fold: str) -> list[str]:
        # a case is in the fold when either lung mask is there (a missing one is an error when it is read)
        masks = {p.stem for name in LUNGS for p in (self._folds[fold] / name).glob("*.gif")}
        orphans = sorted(masks - set(self._images))
        if orphans:
            self.bad(f"{self._folds[fold]}: lung masks without a JSRT image in {self.root / 'All247images'}: "
                     f"{orphans[:5]}")
        return sorted(masks & set(self._images))

    def _fold_of(self, case_id: str) -> str | None:
        return next((f for f in self._folds for name in LUNGS
                     if (self._folds[f] / name / f"{case_id}.gif").exists()), None)

    def has_labels(self, split: str) -> bool:
        return self._folder.has_labels(split) if self._folder is not None else True

    # ------------------------------------------------------------- loading
    def load_case(self, case_id: str) -> Case:
        if self._folder is not None:
            return self._folder.load_case(case_id)
        path = self._images.get(case_id)
        if path is None:
            raise DataError(f"{self.root}: no JSRT image '{case_id}'")
        raw = read_jsrt_raw(path)
        if raw.max() > 4095:
            self.bad(f"{path}: values up to {int(raw.max())} exceed 12 bits (4095): not JSRT big-endian data?")
            raw = np.minimum(raw, 4095)
        image = raw.astype(np.float32) / 4095.0
        if self.invert:
            image = 1.0 - image
        fold = self._fold_of(case_id)
        if fold is None:
            raise DataError(f"{self.root}: no SCR lung mask for {case_id}")
        for name in LUNGS:  # both lungs, or the label silently loses one
            lung = self._folds[fold] / name / f"{case_id}.gif"
            if not lung.is_file():
                raise DataError(f"{lung}: {name} mask not found (the other lung's mask of {case_id} is there)")
        layers = [self._read_lung(self._folds[fold] / name / f"{case_id}.gif") for name in LUNGS]
        if layers[0].shape != layers[1].shape:
            raise DataError(f"{self._folds[fold]}: right/left lung masks of {case_id} differ in size")
        factor = image.shape[0] // layers[0].shape[0]
        if factor < 1 or factor * layers[0].shape[0] != image.shape[0] or layers[0].shape[0] != layers[0].shape[1]:
            raise DataError(f"{path}: image {image.shape} is not an integer multiple of its SCR masks "
                            f"{layers[0].shape}")
        if factor > 1:
            image = block_mean(image, factor)
        mask = (layers[0] | layers[1]) if self.lungs == "union" else \
            np.where(layers[1] > 0, 2, np.where(layers[0] > 0, 1, 0)).astype(np.uint8)
        case = Case(case_id=case_id, image=image[None].astype(np.float32), mask=mask.astype(np.uint8),
                    group=case_id, meta={"source": str(path), "fold": fold})
        return case.validate(str(path))

    def _read_lung(self, path: Path) -> np.ndarray:
        arr = read_image(path, mode="L")
        values = set(np.unique(arr).tolist())
        if not (values <= {0, 255} or values <= {0, 1}):
            self.bad(f"{path}: expected a binary 0/255 lung mask, found values {sorted(values)[:8]}")
        return (arr > (127 if arr.max() > 1 else 0)).astype(np.uint8)
