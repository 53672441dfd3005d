"""Run-length encoding of binary masks for Kaggle-style submission CSVs (``image_name,class,rle``).

Convention (stated in every CSV's docs and tested by round trip): pixels are numbered from 1 in
**row-major** order (left to right, then top to bottom: ``mask.flatten()`` in C order), as the
hand-bone predecessor project's ``encode_mask_to_rle`` does; the string is ``"start length start length ..."``.
Column-major (``order="F"``, top to bottom first: the old Kaggle convention) is available.
An empty mask encodes as the empty string.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from medseg.errors import DataError
from medseg.utils.io import atomic_path

RLE_HEADER = ("image_name", "class", "rle")
#: pixel order of the runs: row-major (Kaggle's usual) or column-major
Order = Literal["C", "F"]


def rle_encode(mask: np.ndarray, order: Order = "C") -> str:
    """Binary mask -> ``"start length ..."`` (1-based starts, ``order`` ``"C"`` row-major or ``"F"``)."""
    flat = np.asarray(mask, dtype=bool).flatten(order=order).view(np.uint8)
    padded = np.concatenate([[0], flat, [0]])
    runs = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs))


def rle_decode(rle: str, shape: Sequence[int], order: Order = "C") -> np.ndarray:
    """Inverse of :func:`rle_encode`. Raises :class:`DataError` on malformed or out-of-range runs."""
    size = int(np.prod(shape))
    flat = np.zeros(size, dtype=bool)
    tokens = str(rle).split() if isinstance(rle, str) else []
    if len(tokens) % 2:
        raise DataError(f"RLE string has an odd number of values ({len(tokens)}): {rle[:60]!r}")
    try:
        nums = np.asarray(tokens, dtype=np.int64).reshape(-1, 2)
    except ValueError as exc:
        raise DataError(f"RLE string is not integers: {str(rle)[:60]!r}") from exc
    for start, length in nums:
        if start < 1 or length < 0 or start - 1 + length > size:
            raise DataError(f"RLE run ({start}, {length}) is outside an image of {size} pixels")
        flat[start - 1:start - 1 + length] = True
    return flat.reshape(tuple(shape), order=order)


def write_rle_csv(rows: Iterable[tuple[str, str, np.ndarray]], path: str | Path, order: Order = "C") -> Path:
    """Write ``image_name,class,rle`` rows from ``(image_name, class_name, binary mask)`` (atomic)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RLE_HEADER)
        for image_name, cls, mask in rows:
            w.writerow([image_name, cls, rle_encode(mask, order)])
    return Path(path)


def read_rle_csv(path: str | Path, shape: Sequence[int], order: Order = "C") -> dict[tuple[str, str], np.ndarray]:
    """``{(image_name, class): mask}`` from a submission CSV (empty ``rle`` cells are empty masks)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != RLE_HEADER:
            raise DataError(f"{path}: expected header {','.join(RLE_HEADER)}, got {reader.fieldnames}")
        return {(r["image_name"], r["class"]): rle_decode(r["rle"] or "", shape, order) for r in reader}
