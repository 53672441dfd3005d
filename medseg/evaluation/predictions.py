"""Saved probabilities (``<case_id>.npy``) and boolean predictions (``predictions/<case_id>.npz``)
of an evaluation: what ``medseg-view``, ``medseg-select`` and ``medseg-export`` read back."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from medseg.errors import DataError
from medseg.utils.io import save_with

#: the sub-folder of an evaluation folder holding the saved predictions
PREDICTIONS = "predictions"


def save_probs(path: Path, probs: torch.Tensor, max_size: int | None = None) -> None:
    """Probabilities as float16 ``.npy`` (enough for thresholds and ensemble weights). With
    ``max_size``, maps whose longest side exceeds it are area-downsampled first (OOF maps of 2048x2048
    x 29 classes would otherwise take 240 MB per image)."""
    if max_size and max(probs.shape[1:]) > max_size:
        scale = max_size / max(probs.shape[1:])
        size = [max(1, round(s * scale)) for s in probs.shape[1:]]
        probs = torch.nn.functional.interpolate(probs[None].float(), size=size, mode="area")[0]
    save_with(path, lambda p: np.save(p, probs.numpy().astype(np.float16)))


def save_prediction(path: Path, pred: torch.Tensor | np.ndarray, threshold: float | None = None) -> Path:
    """A boolean prediction ``(K, *spatial)`` as ``<case_id>.npz``: one bit per class and pixel
    (``np.packbits``), zip-compressed, written atomically; :func:`load_prediction` reads it back.
    A 29 x 2048 x 2048 multi-label mask is 15 MB of bits, far less once compressed."""
    mask = np.asarray(pred, dtype=bool)
    bits, shape = np.packbits(mask.reshape(-1)), np.asarray(mask.shape, np.int64)
    thr = np.asarray(np.nan if threshold is None else threshold, np.float64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to the tmp name
            np.savez_compressed(fh, bits=bits, shape=shape, threshold=thr)

    return save_with(path, write)


def load_prediction(path: str | Path) -> tuple[np.ndarray, float | None]:
    """``(mask (K, *spatial) bool, threshold or None)`` of a file written by :func:`save_prediction`.
    Raises :class:`DataError` naming the file when it is unreadable or inconsistent."""
    try:
        with np.load(path) as z:
            bits, shape, thr = z["bits"], tuple(int(s) for s in z["shape"]), float(z["threshold"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable saved prediction ({type(exc).__name__}: {exc}); delete it or "
                        "rerun the evaluation") from exc
    n = int(np.prod(shape))
    if bits.size != (n + 7) // 8:
        raise DataError(f"{path}: {bits.size} bytes of bits for shape {shape}; the file is damaged")
    return np.unpackbits(bits, count=n).view(bool).reshape(shape), (None if thr != thr else thr)
