"""Reader for DRIVE (Staal et al., IEEE TMI 2004), exactly as distributed::

    DRIVE/training/images/21_training.tif        RGB 565x584
    DRIVE/training/1st_manual/21_manual1.gif     vessels, 0/255
    DRIVE/training/mask/21_training_mask.gif     field of view, 0/255
    DRIVE/test/images/01_test.tif, test/1st_manual/01_manual1.gif,
    DRIVE/test/2nd_manual/01_manual2.gif, test/mask/01_test_mask.gif

Case ids are the image stems (``21_training``, ``01_test``), unique across splits.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.errors import DataError
from medseg.utils.io import read_image

_STEM = re.compile(r"^(\d+)_(training|test)$")


class DriveReader(SegmentationReader):
    """Read DRIVE images, vessel labels and FOV masks.

    Args:
        root: folder holding ``training/`` and/or ``test/``.
        annotator: 1 for ``1st_manual`` (the standard ground truth), 2 for ``2nd_manual`` (test only).
        strict: raise on bad files instead of skipping them.
    """

    task = "binary"
    class_names = ("vessel",)
    #: what ``Case.roi`` is (named in reports: "metrics inside each case's ...")
    roi_description = "field-of-view mask (the standard protocol for retinal images)"
    in_channels = 3

    def __init__(self, root: str | Path, annotator: int = 1, strict: bool = True) -> None:
        super().__init__(root, strict)
        if annotator not in (1, 2):
            raise ValueError(f"annotator must be 1 or 2, got {annotator}")
        self.annotator = annotator
        if not self.available_splits():
            raise DataError(
                f"{self.root}: no DRIVE split found (expected training/images/NN_training.tif "
                f"or test/images/NN_test.tif; {self.seen()}); point data.root at the folder holding training/, "
                f"or use data=folder for another layout"
            )

    def available_splits(self) -> list[str]:
        return [s for s in ("training", "test") if any((self.root / s / "images").glob(f"*_{s}.tif"))]

    def list_cases(self, split: str) -> list[str]:
        folder = self.root / split / "images"
        if not folder.is_dir():
            raise DataError(f"{folder}: DRIVE split '{split}' not found")
        ids = sorted(p.stem for p in folder.glob("*.tif") if _STEM.match(p.stem))
        if not ids:
            raise DataError(f"{folder}: no DRIVE images (NN_{split}.tif)")
        return ids

    def has_labels(self, split: str) -> bool:
        folder = self.root / split / f"{'1st' if self.annotator == 1 else '2nd'}_manual"
        return split == "training" or (folder.is_dir() and any(folder.glob("*.gif")))

    def paths(self, case_id: str) -> dict[str, Path]:
        m = _STEM.match(case_id)
        if not m:
            raise DataError(f"{case_id}: not a DRIVE case id (expected NN_training or NN_test)")
        num, split = m.groups()
        base = self.root / split
        return {
            "image": base / "images" / f"{case_id}.tif",
            "label": base / f"{'1st' if self.annotator == 1 else '2nd'}_manual" / f"{num}_manual{self.annotator}.gif",
            "fov": base / "mask" / f"{case_id}_mask.gif",
        }

    def load_case(self, case_id: str) -> Case:
        paths = self.paths(case_id)
        rgb = read_image(paths["image"], mode="RGB")
        image = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
        fov = self._read_binary(paths["fov"], rgb.shape[:2], required=False)
        meta = {"source": str(paths["image"])}
        if fov is None:  # the metrics are computed inside the FOV: say which cases use an estimated one
            from medseg.data.preprocess import fov_from_image

            fov = fov_from_image(image)
            meta["data_note"] = (f"{paths['fov']}: FOV mask not found; used a field of view estimated from "
                                 "the image (thresholded brightness) instead")
            warnings.warn(meta["data_note"], stacklevel=2)
        # labels are required wherever the split has labels (a test split without 1st_manual/ is unlabelled;
        # one test label missing must not become an all-background target that changes the metrics)
        mask = self._read_binary(paths["label"], rgb.shape[:2], required=self.has_labels(case_id.rsplit("_", 1)[1]))
        case = Case(case_id=case_id, image=image, mask=mask, roi=fov.astype(bool), meta=meta)
        return case.validate(str(paths["image"]))

    def _read_binary(self, path: Path, shape: tuple[int, int], required: bool) -> np.ndarray | None:
        if not path.exists():
            if required:
                raise DataError(f"{path}: label file not found")
            return None
        arr = read_image(path, mode="L")
        if arr.shape != shape:
            raise DataError(f"{path}: size {arr.shape[::-1]} differs from its image {shape[::-1]}")
        values = np.unique(arr)
        if not set(values.tolist()) <= {0, 255} and not set(values.tolist()) <= {0, 1}:
            self.bad(f"{path}: expected a binary 0/255 mask, found values {values[:8].tolist()}")
        return (arr > 127 if arr.max() > 1 else arr > 0).astype(np.uint8)
