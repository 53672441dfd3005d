"""torch Datasets over in-memory, preprocessed :class:`~medseg.data.case.Case` lists.

* :class:`PatchDataset`: random patches for training (patch training, as in the vessel predecessor projects),
  optionally centred in the ROI and oversampling foreground.
* :class:`ResizeDataset`: whole images resized to a fixed size (the 512x512 vessel predecessor project).
* :class:`FullImageDataset`: whole cases for validation, testing and prediction.

Every item is a dict: ``image`` float32 ``(C, *spatial)``, ``mask`` (int ``(*spatial)`` or
multi-hot ``(K, *spatial)``), ``roi`` bool ``(*spatial)`` (all true when the case has none),
``case_id`` str.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from medseg.data.case import Case
from medseg.data.samplers import item_seed


def _tensor(a, dtype=None) -> torch.Tensor:
    a = np.ascontiguousarray(a, dtype=dtype)
    return torch.from_numpy(a if a.flags.writeable else a.copy())  # memory-mapped cases are read-only


def _keep(cases: Sequence[Case]) -> Sequence[Case]:
    """Lists are copied; other sequences (the lazy :class:`~medseg.data.cache.CachedCases`) are kept
    as they are, so a case is opened on access and a DataLoader worker started by ``spawn`` pickles
    folder names, not arrays."""
    return list(cases) if isinstance(cases, (list, tuple)) else cases


def _augment(augment, seed: int, epoch: int, index: int, image, mask, roi):
    """Apply ``augment`` with its random state a pure function of ``(seed, epoch, index)`` (re-seeded
    before each item), so an item is the same in a resumed run and whatever the number of workers."""
    if hasattr(augment, "reseed"):
        augment.reseed(item_seed(seed, epoch, index, 0xA06))
    return augment(image, mask, roi)


def _item(case_id: str, image, mask, roi) -> dict:
    spatial = image.shape[1:]
    return {
        "image": _tensor(image, np.float32),
        "mask": _tensor(mask).long() if mask is not None
        else torch.zeros(spatial, dtype=torch.long),
        "roi": _tensor(roi, bool) if roi is not None
        else torch.ones(spatial, dtype=torch.bool),
        "case_id": case_id,
    }


class PatchDataset(Dataset):
    """``samples_per_epoch`` random patches drawn from ``cases``.

    Args:
        patch_size: patch spatial size (2 or 3 values).
        foreground_fraction: probability that a patch is centred on a foreground pixel.
        center_in_roi: centre other patches inside the ROI (e.g. the fundus FOV).
        augment: callable ``(image, mask, roi) -> (image, mask, roi)`` or ``None``.
        seed: base seed; the patch for index ``i`` in epoch ``e`` depends on ``(seed, e, i)`` only,
            so runs reproduce whatever the number of workers.
        max_centres: keep at most this many candidate centres per case (evenly strided), so the
            index lists of large volumes stay small; ``None`` keeps all.
    """

    def __init__(
        self,
        cases: Sequence[Case],
        patch_size: Sequence[int],
        samples_per_epoch: int,
        foreground_fraction: float = 0.5,
        center_in_roi: bool = True,
        augment=None,
        seed: int = 0,
        max_centres: int | None = None,
    ) -> None:
        if not cases:
            raise ValueError("PatchDataset needs at least one case")
        self.cases = _keep(cases)
        self.patch = tuple(int(p) for p in patch_size)
        if len(self.patch) != len(self.cases[0].spatial_shape):
            raise ValueError(f"patch_size {self.patch} does not match {len(self.cases[0].spatial_shape)}D cases")
        self.n = int(samples_per_epoch)
        self.fg = float(foreground_fraction)
        self.center_in_roi = center_in_roi
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        # candidate centres, computed once
        cap = (lambda idx: idx) if not max_centres else \
            (lambda idx: idx[:: -(-idx.size // int(max_centres))] if idx.size > max_centres else idx)
        self._fg_idx = [cap(np.flatnonzero(self._fg_map(c))) for c in self.cases]
        self._roi_idx = [cap(np.flatnonzero(c.roi)) if (center_in_roi and c.roi is not None) else None
                         for c in self.cases]

    @staticmethod
    def _fg_map(case: Case) -> np.ndarray:
        if case.mask is None:
            return np.zeros(case.spatial_shape, bool)
        return np.asarray(case.mask.any(0) if case.mask.ndim == case.image.ndim else case.mask > 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        ci = int(rng.integers(len(self.cases)))
        case = self.cases[ci]
        shape = case.spatial_shape
        if self._fg_idx[ci].size and rng.random() < self.fg:
            flat = self._fg_idx[ci][rng.integers(self._fg_idx[ci].size)]
        elif (roi_idx := self._roi_idx[ci]) is not None and roi_idx.size:
            flat = roi_idx[rng.integers(roi_idx.size)]
        else:
            flat = rng.integers(int(np.prod(shape)))
        center = np.unravel_index(flat, shape)
        starts = [int(np.clip(c - p // 2, 0, max(s - p, 0))) for c, p, s in zip(center, self.patch, shape)]
        sl = tuple(slice(st, st + p) for st, p in zip(starts, self.patch))
        image = np.asarray(case.image[(slice(None),) + sl])
        mask = None if case.mask is None else np.asarray(case.mask[(Ellipsis,) + sl])
        roi = None if case.roi is None else np.asarray(case.roi[sl])
        image, mask, roi = _pad_to(image, mask, roi, self.patch)
        if self.augment is not None:
            image, mask, roi = _augment(self.augment, self.seed, self.epoch, index, image, mask, roi)
        return _item(case.case_id, image, mask, roi)


def _pad_to(image, mask, roi, size):
    """Zero-pad arrays smaller than the patch (images smaller than the patch size)."""
    spatial = image.shape[1:]
    if all(s >= p for s, p in zip(spatial, size)):
        return image, mask, roi
    pad = [(0, max(p - s, 0)) for s, p in zip(spatial, size)]
    image = np.pad(image, [(0, 0)] + pad)
    if mask is not None:
        mask = np.pad(mask, ([(0, 0)] if mask.ndim > len(size) else []) + pad)
    if roi is not None:
        roi = np.pad(roi, pad)
    return image, mask, roi


class ResizeDataset(Dataset):
    """Whole images resized to ``size`` (bilinear for images, nearest for masks and ROI). The
    augmentation of item ``i`` in epoch ``e`` depends on ``(seed, e, i)`` only."""

    def __init__(self, cases: Sequence[Case], size: Sequence[int], augment=None, seed: int = 0) -> None:
        self.cases, self.size, self.augment = list(cases), tuple(int(s) for s in size), augment
        self.seed, self.epoch = int(seed), 0
        self._resized = [self._resize(c) for c in self.cases]

    def _resize(self, case: Case):
        mode = "bilinear" if len(self.size) == 2 else "trilinear"
        img = F.interpolate(torch.from_numpy(case.image)[None], size=self.size, mode=mode, align_corners=False)[0]
        def near(a):
            if a is None:
                return None
            t = torch.from_numpy(np.asarray(a, dtype=np.float32))
            t = t[None, None] if t.ndim == len(self.size) else t[None]
            out = F.interpolate(t, size=self.size, mode="nearest")[0]
            return out[0].numpy() if a.ndim == len(self.size) else out.numpy()
        mask = near(case.mask)
        return img.numpy(), None if mask is None or case.mask is None else mask.astype(case.mask.dtype), \
            None if case.roi is None else near(case.roi).astype(bool)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        image, mask, roi = self._resized[index]
        if self.augment is not None:
            image, mask, roi = _augment(self.augment, self.seed, self.epoch, index, image, mask, roi)
        return _item(self.cases[index].case_id, image, mask, roi)


class FullImageDataset(Dataset):
    """Whole cases, unchanged (validation, test, prediction). Use with ``batch_size=1``."""

    def __init__(self, cases: Sequence[Case]) -> None:
        self.cases = _keep(cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict:
        c = self.cases[index]
        return _item(c.case_id, c.image, c.mask, c.roi)
