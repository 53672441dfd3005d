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
from scipy import ndimage

from medseg.data.formats.nifti import write_nifti
from medseg.utils.io import save_with, write_image, write_json_atomic

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
    image_name: str = "case_{i:03d}",
    mask_name: str = "{stem}",
    mask_ext: str | None = None,
    start: int = 0,
) -> Path:
    """Write ``n`` cases ``case_000..`` as ``out/images/<stem>.<ext>`` + ``out/masks/...``.

    ``ext`` is ``png``, ``jpg`` (images only; masks then PNG), ``tif``, ``bmp``, ``ppm`` (colour),
    ``pgm`` (2D, 8-bit), or ``nii.gz``, ``mha``, ``nrrd`` (2D or 3D ``size``, float32).
    ``image_name`` (with ``{i}``) and ``mask_name`` (with ``{stem}``, the image name) set the file
    names without ending; ``mask_ext`` the masks' ending (default: as the images; PNG for JPEG and
    PPM images); ``start`` the first ``i`` (so two calls can write sibling split folders).
    Binary masks are 0/255, multi-class masks the indices 0..3 (``round, square, diamond``),
    multi-label masks 0/255 under ``masks/<class>/``. ``mask_size`` writes masks at another
    resolution (nearest neighbour), as some lung sets do. Case ``i`` is
    ``make_shapes(np.random.default_rng((seed, i)), size, overlap=task == "multilabel")``.
    """
    from medseg.data.preprocess import resize_nearest

    out = Path(out)
    classes = ["round"] if task == "binary" else list(SHAPES)
    volume = ext in VOLUME_EXTS
    for i in range(start, start + n):
        s = make_shapes(np.random.default_rng((seed, i)), size, overlap=task == "multilabel")
        stem = image_name.format(i=i)
        mstem = mask_name.format(stem=stem)
        labels = s.labels if mask_size is None else resize_nearest(s.labels, mask_size)
        img = s.image if volume else (s.image * 255 + 0.5).astype(np.uint8)
        if ext == "ppm":  # a colour format: the same shapes in all three channels, tinted
            img = np.stack([img, (img * 0.8).astype(np.uint8), (img * 0.5).astype(np.uint8)], axis=-1)
        _save(out / image_dir / f"{stem}.{ext}", img)
        # JPEG is lossy and PPM is colour: masks as PNG, as such sets ship them
        ext_m = mask_ext or {"jpg": "png", "ppm": "png"}.get(ext, ext)
        if task == "binary":
            _save(out / mask_dir / f"{mstem}.{ext_m}", labels[0] * np.uint8(255))
        elif task == "multiclass":
            idx = np.zeros(labels.shape[1:], np.uint8)
            for k in range(len(SHAPES)):
                idx[labels[k] > 0] = k + 1
            _save(out / mask_dir / f"{mstem}.{ext_m}", idx)
        else:
            for k, name in enumerate(SHAPES):
                _save(out / mask_dir / name / f"{mstem}.{ext_m}", labels[k] * np.uint8(255))
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.folder", "seed": seed, "n": n, "task": task,
                                     "classes": classes, "size": list(size), "ext": ext})
    return out


VOLUME_EXTS = ("nii.gz", "mha", "nrrd")


def _save(path: Path, arr: np.ndarray) -> None:
    if path.name.endswith(".nii.gz"):
        write_nifti(path, arr, np.eye(4), spacing=(1.0,) * arr.ndim)
        return
    if path.suffix in (".mha", ".nrrd"):
        import SimpleITK as sitk

        # 3D: SimpleITK indexes (x, y, z) and medseg reads ITK volumes back in that order (see
        # formats.files); 2D images stay (rows, columns)
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.T if arr.ndim == 3 else arr))
        img.SetSpacing((1.0,) * arr.ndim)
        save_with(path, lambda p: sitk.WriteImage(img, str(p), useCompression=True))
        return
    fmt = {".png": "PNG", ".tif": "TIFF", ".bmp": "BMP", ".jpg": "JPEG", ".ppm": "PPM", ".pgm": "PPM"}[path.suffix]
    write_image(path, arr, fmt)
