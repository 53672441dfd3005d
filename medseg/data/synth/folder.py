"""Write a synthetic generic ``images/`` + ``masks/`` set (see :mod:`medseg.data.formats.folder`).

Objects of three shapes (round, square, diamond: L2, L-inf and L1 balls, so it works in 2D and 3D)
have the *same* intensity distribution; only the shape tells the class. With ``task=binary`` only
round objects are foreground and the others are distractors; ``multiclass`` labels each shape with
its class index; ``multilabel`` lets objects overlap and writes one mask folder per class. Smooth
shading and noise make a threshold useless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from medseg.data.formats.nifti import write_nifti
from medseg.utils.io import save_with, write_json_atomic

MARKER = ".medseg_synthetic.json"
SHAPES = ("round", "square", "diamond")


@dataclass
class ShapesSample:
    image: np.ndarray  # (*size) float32 in [0, 1]
    labels: np.ndarray  # (K, *size) uint8: one layer per shape class


def make_shapes(rng: np.random.Generator, size: Sequence[int], n_objects: int = 6,
                overlap: bool = False) -> ShapesSample:
    """One image with ``n_objects`` objects of random shape, size and position."""
    size = tuple(int(s) for s in size)
    grid = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in size], indexing="ij")
    labels = np.zeros((len(SHAPES),) + size, np.uint8)
    occupied = np.zeros(size, bool)
    image = np.zeros(size, np.float32)
    for _ in range(n_objects):
        k = int(rng.integers(len(SHAPES)))
        r = rng.uniform(0.06, 0.14) * min(size)
        c = [rng.uniform(r, s - r) for s in size]
        d = np.stack([np.abs(g - ci) / r for g, ci in zip(grid, c)])
        dist = {"round": np.sqrt((d**2).sum(0)), "square": d.max(0), "diamond": d.sum(0) / np.sqrt(len(size))}[SHAPES[k]]
        obj = dist <= 1.0
        if not overlap:
            obj &= ~occupied
        occupied |= obj
        labels[k] |= obj
        image[obj] = rng.uniform(0.45, 0.75)
    shading = ndimage.gaussian_filter(rng.standard_normal(size), min(size) / 6)
    shading /= np.abs(shading).max() + 1e-8
    image = ndimage.gaussian_filter(image, 0.7) + 0.25 + 0.2 * shading + rng.normal(0, 0.05, size)
    return ShapesSample(image=np.clip(image, 0, 1).astype(np.float32), labels=labels)


def write_folder(
    out: str | Path,
    n: int = 20,
    size: Sequence[int] = (128, 128),
    task: str = "binary",
    ext: str = "png",
    seed: int = 0,
    mask_size: Sequence[int] | None = None,
    image_dir: str = "images",
    mask_dir: str = "masks",
) -> Path:
    """Write ``n`` cases ``case_000..`` as ``out/images/<stem>.<ext>`` + ``out/masks/...``.

    ``ext`` is ``png``, ``jpg`` (images only; masks then PNG), ``tif``, ``bmp`` (2D, 8-bit) or
    ``nii.gz`` (2D or 3D ``size``, float32).
    Binary masks are 0/255, multi-class masks the indices 0..3 (``round, square, diamond``),
    multi-label masks 0/255 under ``masks/<class>/``. ``mask_size`` writes masks at another
    resolution (nearest neighbour), as some lung sets do. Case ``i`` is
    ``make_shapes(np.random.default_rng((seed, i)), size, overlap=task == "multilabel")``.
    """
    from medseg.data.preprocess import resize_nearest

    out = Path(out)
    classes = ["round"] if task == "binary" else list(SHAPES)
    for i in range(n):
        s = make_shapes(np.random.default_rng((seed, i)), size, overlap=task == "multilabel")
        stem = f"case_{i:03d}"
        labels = s.labels if mask_size is None else resize_nearest(s.labels, mask_size)
        _save(out / image_dir / f"{stem}.{ext}", (s.image * 255 + 0.5).astype(np.uint8) if ext != "nii.gz" else s.image)
        ext_m = "png" if ext == "jpg" else ext  # JPEG is lossy: masks as PNG, as such sets ship them
        if task == "binary":
            _save(out / mask_dir / f"{stem}.{ext_m}", labels[0] * np.uint8(255))
        elif task == "multiclass":
            idx = np.zeros(labels.shape[1:], np.uint8)
            for k in range(len(SHAPES)):
                idx[labels[k] > 0] = k + 1
            _save(out / mask_dir / f"{stem}.{ext_m}", idx)
        else:
            for k, name in enumerate(SHAPES):
                _save(out / mask_dir / name / f"{stem}.{ext_m}", labels[k] * np.uint8(255))
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.folder", "seed": seed, "n": n, "task": task,
                                     "classes": classes, "size": list(size), "ext": ext})
    return out


def _save(path: Path, arr: np.ndarray) -> None:
    if path.name.endswith(".nii.gz"):
        write_nifti(path, arr, np.eye(4), spacing=(1.0,) * arr.ndim)
        return
    fmt = {".png": "PNG", ".tif": "TIFF", ".bmp": "BMP", ".jpg": "JPEG"}[path.suffix]
    save_with(path, lambda p: Image.fromarray(arr).save(p, format=fmt))
