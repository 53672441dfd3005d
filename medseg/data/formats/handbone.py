"""Reader for the hand-bone X-ray segmentation set, exactly as distributed::

    train/DCM/ID001/image1661130828152_R.png          2048x2048 grayscale PNG (two per ID: both hands)
    train/outputs_json/ID001/image1661130828152_R.json {"annotations": [{"label": "finger-1",
                                                         "points": [[x, y], ...]}, ...]}
    test/DCM/ID040/...                                  no JSON

29 classes (:data:`CLASSES`) that overlap (bones overlap on a radiograph), so the target is a
29-channel multi-hot mask ``(29, H, W)`` rasterised from the polygons: a multi-label task with one
sigmoid per class. Case ids are ``<ID>_<stem>``; the group is the ID, so both hands of a person
always fall in the same fold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from medseg.data.case import Case
from medseg.data.formats.base import SegmentationReader
from medseg.data.formats.folder import to_float
from medseg.errors import DataError
from medseg.utils.io import read_image

CLASSES = tuple(f"finger-{i}" for i in range(1, 20)) + (
    "Trapezium", "Trapezoid", "Capitate", "Hamate", "Scaphoid", "Lunate", "Triquetrum", "Pisiform",
    "Radius", "Ulna",
)


def rasterize(polygons: dict[str, list], shape: tuple[int, int], classes=CLASSES) -> np.ndarray:
    """``{class: [points, ...]}`` (pixel ``[x, y]`` lists) -> uint8 multi-hot ``(K, H, W)``."""
    h, w = shape
    mask = np.zeros((len(classes),) + (h, w), np.uint8)
    for k, name in enumerate(classes):
        polys = polygons.get(name, [])
        if not polys:
            continue
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        for pts in polys:
            draw.polygon([(float(x), float(y)) for x, y in pts], fill=1, outline=1)
        mask[k] = np.asarray(canvas)
    return mask


class HandBoneReader(SegmentationReader):
    """Read hand radiographs and their 29 bone polygons.

    Args:
        root: folder holding ``train/`` and/or ``test/``.
        strict: raise on bad files; ``False`` warns, drops bad polygons and clips points.
    """

    task = "multilabel"
    class_names = CLASSES
    in_channels = 1

    def __init__(self, root: str | Path, strict: bool = True) -> None:
        super().__init__(root, strict)
        self._index: dict[str, dict[str, tuple[str, Path]]] = {}
        for split in ("train", "test"):
            base = self.root / split / "DCM"
            if not base.is_dir():
                continue
            entries = {}
            for img in sorted(base.glob("*/*.png")):
                entries[f"{img.parent.name}_{img.stem}"] = (img.parent.name, img)
            if entries:
                self._index[split] = entries
        if not self._index:
            raise DataError(f"{self.root}: no hand radiographs found (expected train/DCM/<ID>/<name>.png; "
                            f"{self.seen()}); point data.root at the folder holding train/")
        for split in ("train", "test"):  # an annotation whose image is missing is a lost case, not a skip
            known = {(pid, img.stem) for pid, img in self._index.get(split, {}).values()}
            for js in sorted((self.root / split / "outputs_json").glob("*/*.json")):
                if (js.parent.name, js.stem) not in known:
                    self.bad(f"{js}: annotation without its image (expected "
                             f"{self.root / split / 'DCM' / js.parent.name / (js.stem + '.png')})")

    def available_splits(self) -> list[str]:
        return list(self._index)

    def list_cases(self, split: str) -> list[str]:
        if split not in self._index:
            raise DataError(f"{self.root}: split '{split}' not found (expected {split}/DCM/<ID>/*.png)")
        return sorted(self._index[split])

    def has_labels(self, split: str) -> bool:
        return split in self._index and (self.root / split / "outputs_json").is_dir()

    def _entry(self, case_id: str) -> tuple[str, str, Path]:
        for split, entries in self._index.items():
            if case_id in entries:
                return (split,) + entries[case_id]
        raise DataError(f"{self.root}: no hand radiograph '{case_id}'")

    def group_of(self, case_id: str) -> str:
        return self._entry(case_id)[1]

    def json_path(self, case_id: str) -> Path:
        split, pid, img = self._entry(case_id)
        return self.root / split / "outputs_json" / pid / f"{img.stem}.json"

    def load_case(self, case_id: str) -> Case:
        split, pid, img_path = self._entry(case_id)
        arr = read_image(img_path)
        if arr.ndim == 3:  # radiographs saved as RGB(A): the gray value
            arr = arr[..., :3].mean(axis=2).astype(arr.dtype)
        gray = arr
        image = to_float(arr)[None]  # 8- or 16-bit PNGs to [0, 1] by their dtype
        mask = None
        jpath = self.json_path(case_id)
        if jpath.exists():
            mask = rasterize(self.read_polygons(jpath, gray.shape), gray.shape)
        elif self.has_labels(split):
            raise DataError(f"{jpath}: annotation file not found for {img_path}")
        case = Case(case_id=case_id, image=image, mask=mask, group=pid,
                    meta={"source": str(img_path), "json": str(jpath) if mask is not None else None})
        return case.validate(str(img_path))

    def read_polygons(self, path: Path, shape: tuple[int, int]) -> dict[str, list]:
        """Parse and check one annotation file -> ``{class: [points, ...]}``."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            annotations = doc["annotations"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a valid annotation file ({type(exc).__name__}: {exc})") from exc
        h, w = shape
        out: dict[str, list] = {}
        for i, ann in enumerate(annotations):
            label, pts = ann.get("label"), ann.get("points")
            if label not in CLASSES:
                self.bad(f"{path}: annotation {i} has label {label!r}, not one of the 29 hand-bone classes")
                continue
            try:
                arr = np.asarray(pts, dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.zeros((0,))
            if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3:
                self.bad(f"{path}: polygon {i} ({label}) has {len(pts) if isinstance(pts, list) else 0} "
                         f"valid points; a polygon needs at least 3 [x, y] points")
                continue
            outside = (arr[:, 0] < 0) | (arr[:, 0] > w) | (arr[:, 1] < 0) | (arr[:, 1] > h)
            if outside.any():
                self.bad(f"{path}: polygon {i} ({label}) has {int(outside.sum())} points outside the "
                         f"{w}x{h} image (first: {arr[outside][0].tolist()})")
                arr = np.clip(arr, 0, [w, h])
            out.setdefault(label, []).append(arr.tolist())
        return out
