"""Reader for Medical Segmentation Decathlon tasks (Antonelli et al. 2022), as distributed::

    TaskXX_Name/dataset.json            "modality": {"0": "FLAIR", ...}, "labels": {"0": "background", "1": ...},
                                        "training": [{"image": "./imagesTr/x_001.nii.gz", "label": "./labelsTr/x_001.nii.gz"}],
                                        "test": ["./imagesTs/x_485.nii.gz"]
    TaskXX_Name/imagesTr/x_001.nii.gz   3D, or 4D (x, y, z, modality) for multi-modal tasks (BrainTumour, Prostate)
    TaskXX_Name/labelsTr/x_001.nii.gz   3D label map 0..K

The case list comes from ``dataset.json`` (the tar files also hold macOS ``._x_001.nii.gz``
companions, which are not NIfTI and are never read). The 4th axis becomes the channel axis; spatial
axes keep the file's (i, j, k) order and affine. One foreground label -> ``binary``, more ->
``multiclass``. Splits: ``training`` (labelled) and ``test`` (unlabelled, as released).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.files import split_ext
from medseg.data.formats.nifti import load_nifti
from medseg.data.formats.nnunet import LabelMap, channel_names, read_dataset_json
from medseg.errors import DataError


class DecathlonReader(SegmentationReader):
    """Read a Decathlon ``TaskXX_Name`` folder (see module docstring)."""

    spatial_dims = 3

    def __init__(self, root: str | Path, strict: bool = True) -> None:
        super().__init__(root, strict)
        self.spec = read_dataset_json(self.root)
        src = self.root / "dataset.json"
        self.channel_names = channel_names(self.spec, src, "modality", "channel_names")
        self.in_channels = len(self.channel_names)
        self.labels = LabelMap(self.spec["labels"], src)
        self.task, self.class_names = self.labels.task, self.labels.class_names
        self._cases: dict[str, dict[str, tuple[Path, Path | None]]] = {}
        training = self.spec.get("training")
        if not isinstance(training, list) or not training:
            raise DataError(f"{src}: no 'training' list of {{image, label}} entries")
        for i, entry in enumerate(training):
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise DataError(f"{src}: training[{i}] needs 'image' and 'label', got {entry!r}")
            self._add("training", self.root / entry["image"], self.root / entry["label"])
        for name in self.spec.get("test") or []:
            self._add("test", self.root / (name["image"] if isinstance(name, dict) else name), None)
        if not self._cases.get("training"):
            raise DataError(f"{src}: none of the {len(training)} training images listed exists under {self.root} "
                            f"(first: {training[0]['image']}); is data.root the TaskXX_Name folder?")

    def _add(self, split: str, image: Path, label: Path | None) -> None:
        if not image.is_file():
            self.bad(f"{image}: listed in dataset.json but missing")
            return
        cid = split_ext(image)[0] or image.name
        self._cases.setdefault(split, {})[cid] = (image, label)

    def available_splits(self) -> list[str]:
        return [s for s, c in self._cases.items() if c]

    def list_cases(self, split: str) -> list[str]:
        if split not in self._cases:
            raise DataError(f"{self.root}: split '{split}' not found (found {self.available_splits()}); "
                            "set data.train_split / data.test_split")
        return sorted(self._cases[split])

    def has_labels(self, split: str) -> bool:
        return split == "training"

    def load_case(self, case_id: str) -> Case:
        entry = next((c[case_id] for c in self._cases.values() if case_id in c), None)
        if entry is None:
            raise DataError(f"{self.root}: no case '{case_id}'")
        image_path, label_path = entry
        data, affine, spacing = load_nifti(image_path)
        if data.ndim == 3:
            data = data[None]
        elif data.ndim == 4:
            data = np.moveaxis(data, -1, 0)  # (x, y, z, modality) -> channels first
        else:
            raise DataError(f"{image_path}: expected a 3D or 4D NIfTI, got shape {data.shape}")
        if data.shape[0] != self.in_channels:
            raise DataError(f"{image_path}: {data.shape[0]} modalities, dataset.json lists {self.in_channels} "
                            f"({', '.join(self.channel_names)})")
        image = np.ascontiguousarray(data, dtype=np.float32)
        if not np.isfinite(image).all():
            raise DataError(f"{image_path}: image contains NaN or infinite values")
        mask = None
        if label_path is not None:
            if not label_path.is_file():
                raise DataError(f"{label_path}: label of case {case_id} listed in dataset.json but missing")
            seg, _, _ = load_nifti(label_path)
            if seg.shape != image.shape[1:]:
                raise DataError(f"{label_path}: label shape {seg.shape} differs from the image {image.shape[1:]}")
            mask = self.labels.mask(seg, label_path, self.bad)
        return Case(case_id, image, mask=mask, spacing=spacing,
                    meta={"source": str(image_path), "affine": affine}).validate(str(image_path))
