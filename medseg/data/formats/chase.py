"""Reader for CHASE_DB1 (Fraz et al. 2012), exactly as distributed: one flat folder ::

    Image_01L.jpg ... Image_14R.jpg          RGB 999x960 (both eyes of 14 children)
    Image_01L_1stHO.png, Image_01L_2ndHO.png vessel labels of two observers (0/255 or 0/1)

There are no FOV masks: the field of view is derived from the image
(:func:`medseg.data.preprocess.fov_from_image`). There is no official split: by default subjects
01-10 are ``training`` and 11-14 ``test`` (``train_subjects``); ``all`` lists every image. The
group of a case is its subject, so a child's left and right eye always stay together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.preprocess import fov_from_image
from medseg.errors import DataError
from medseg.utils.io import read_image

_STEM = re.compile(r"^Image_(\d{2})([LR])$")


class ChaseReader(SegmentationReader):
    """Read CHASE_DB1 images and vessel labels.

    Args:
        root: the flat CHASE_DB1 folder.
        annotator: 1 (``_1stHO``, the usual ground truth) or 2 (``_2ndHO``).
        train_subjects: subject numbers of the ``training`` split; the rest is ``test``.
        strict: raise on bad files instead of skipping them.
    """

    task = "binary"
    class_names = ("vessel",)
    #: what ``Case.roi`` is (named in reports: "metrics inside each case's ...")
    roi_description = "field-of-view mask (the standard protocol for retinal images)"
    in_channels = 3

    def __init__(self, root: str | Path, annotator: int = 1,
                 train_subjects: Sequence[int] = tuple(range(1, 11)), strict: bool = True) -> None:
        super().__init__(root, strict)
        if annotator not in (1, 2):
            raise ValueError(f"annotator must be 1 or 2, got {annotator}")
        self.annotator = annotator
        self.train_subjects = sorted(int(s) for s in train_subjects)
        self._ids = sorted(p.stem for p in self.root.glob("Image_*.jpg") if _STEM.match(p.stem))
        if not self._ids:
            raise DataError(f"{self.root}: no CHASE_DB1 images (expected Image_01L.jpg ... in one folder; "
                            f"{self.seen()}); point data.root at that folder")

    def available_splits(self) -> list[str]:
        return ["all"] + [s for s in ("training", "test") if self._split_ids(s)]

    def _split_ids(self, split: str) -> list[str]:
        if split == "all":
            return list(self._ids)
        inside = [c for c in self._ids if int(self.group_of(c)) in self.train_subjects]
        if split == "training":
            return inside
        if split == "test":
            return [c for c in self._ids if c not in inside]
        raise DataError(f"{self.root}: CHASE_DB1 split '{split}' unknown (all, training, test)")

    def list_cases(self, split: str) -> list[str]:
        ids = self._split_ids(split)
        if not ids:
            raise DataError(f"{self.root}: CHASE_DB1 split '{split}' is empty (train_subjects={self.train_subjects})")
        return ids

    def group_of(self, case_id: str) -> str:
        m = _STEM.match(case_id)
        if not m:
            raise DataError(f"{case_id}: not a CHASE_DB1 case id (expected Image_NN[LR])")
        return m.group(1)

    def paths(self, case_id: str) -> dict[str, Path]:
        self.group_of(case_id)
        return {"image": self.root / f"{case_id}.jpg",
                "label": self.root / f"{case_id}_{'1st' if self.annotator == 1 else '2nd'}HO.png"}

    def load_case(self, case_id: str) -> Case:
        paths = self.paths(case_id)
        rgb = read_image(paths["image"], mode="RGB")
        image = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
        label = read_image(paths["label"], mode="L")
        if label.shape != rgb.shape[:2]:
            raise DataError(f"{paths['label']}: size {label.shape[::-1]} differs from its image {rgb.shape[1::-1]}")
        values = set(np.unique(label).tolist())
        if not (values <= {0, 255} or values <= {0, 1}):
            self.bad(f"{paths['label']}: expected a binary 0/255 mask, found values {sorted(values)[:8]}")
        mask = (label > (127 if label.max() > 1 else 0)).astype(np.uint8)
        case = Case(case_id=case_id, image=image, mask=mask, roi=fov_from_image(image), group=self.group_of(case_id),
                    meta={"source": str(paths["image"])})
        return case.validate(str(paths["image"]))
