"""Training-time augmentation for 2D cases, on albumentations.

:class:`Augment2D` wraps an ``albumentations.Compose`` so that it takes and returns medseg's
channels-first arrays, moves the mask and the ROI with every geometric transform (nearest
neighbour), and is reproducible: the Compose is seeded, and each DataLoader worker re-seeds it
from its own seed (see :meth:`reseed`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Augment2D:
    def __init__(self, transforms: Sequence, seed: int = 0) -> None:
        import albumentations as A

        self.compose = A.Compose(list(transforms), seed=seed)

    def reseed(self, seed: int) -> None:
        self.compose.set_random_seed(seed)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None, roi: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``image (C,H,W)``, ``mask (H,W)`` or ``(K,H,W)``, ``roi (H,W)`` -> the same, augmented."""
        masks, layout = [], []
        if mask is not None:
            if mask.ndim == 3:
                masks += list(mask)
                layout.append(("mask", mask.shape[0]))
            else:
                masks.append(mask)
                layout.append(("mask", 0))
        if roi is not None:
            masks.append(roi.astype(np.uint8))
            layout.append(("roi", 0))
        out = self.compose(image=np.ascontiguousarray(image.transpose(1, 2, 0)), masks=masks)
        new_image = np.ascontiguousarray(out["image"].transpose(2, 0, 1), dtype=np.float32)
        new_masks = list(out["masks"])
        new_mask = new_roi = None
        for kind, n in layout:
            if kind == "mask":
                if n:
                    new_mask = np.stack(new_masks[:n]).astype(mask.dtype)
                    new_masks = new_masks[n:]
                else:
                    new_mask = np.asarray(new_masks.pop(0)).astype(mask.dtype)
            else:
                new_roi = np.asarray(new_masks.pop(0)).astype(bool)
        return new_image, new_mask, new_roi
