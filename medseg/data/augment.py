"""Training-time augmentation for 2D cases, on albumentations.

:class:`Augment2D` wraps an ``albumentations.Compose`` so that it takes and returns medseg's
channels-first arrays, moves the mask and the ROI with every geometric transform (nearest
neighbour), and is reproducible: the Compose is seeded, and each DataLoader worker re-seeds it
from its own seed (see :meth:`reseed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class RandomFlip:
    """Flip each spatial axis with probability ``p``, in 2D and 3D alike (the vessel predecessor projects' flips).

    Kept rather than a MONAI ``RandFlipd`` per axis (the same flips): that chain took 176x as long on
    a 64x64 patch and 8x on a 96^3 volume, measured in one run by
    ``experiments/benchmarks/bench_transforms.py`` (shared machine).

    Args:
        axes: spatial axes to flip (0 = first spatial axis); ``None`` flips any of them.
        p: probability per axis.
        seed: seed of the generator; workers re-seed through :meth:`reseed`.
    """

    def __init__(self, axes: Sequence[int] | None = None, p: float = 0.5, seed: int = 0) -> None:
        self.axes, self.p = None if axes is None else [int(a) for a in axes], float(p)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(int(seed))

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None, roi: np.ndarray | None
    ) -> tuple[np.ndarray | None, ...]:
        nd = image.ndim - 1
        axes = tuple(ax - nd for ax in (range(nd) if self.axes is None else self.axes) if self.rng.random() < self.p)
        if not axes:
            return image, mask, roi
        # one flip of all chosen axes, one copy per array (volumes are large)
        return tuple(None if a is None else np.ascontiguousarray(np.flip(a, axes)) for a in (image, mask, roi))


class Augment2D:
    """albumentations on medseg's channels-first 2D arrays (see the module docstring).

    Args:
        transforms: albumentations transforms (geometric ones move mask and ROI with nearest).
        seed: seed of the Compose; workers re-seed through :meth:`reseed`.
    """

    def __init__(self, transforms: Sequence, seed: int = 0) -> None:
        import albumentations as A

        self.compose = A.Compose(list(transforms), seed=seed)

    def reseed(self, seed: int) -> None:
        self.compose.set_random_seed(seed)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None, roi: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``image (C,H,W)``, ``mask (H,W)`` or ``(K,H,W)``, ``roi (H,W)`` -> the same, augmented."""
        if image.ndim != 3:
            raise ValueError(f"Augment2D takes 2D images (C,H,W), got shape {image.shape}: "
                             "use augment=monai3d (Augment3D) or augment=flips for volumes")
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
                assert mask is not None  # a "mask" entry is only laid out for a mask
                if n:
                    new_mask = np.stack(new_masks[:n]).astype(mask.dtype)
                    new_masks = new_masks[n:]
                else:
                    new_mask = np.asarray(new_masks.pop(0)).astype(mask.dtype)
            else:
                new_roi = np.asarray(new_masks.pop(0)).astype(bool)
        return new_image, new_mask, new_roi


class Augment3D:
    """Training-time augmentation for 3D volumes on MONAI dictionary transforms.

    The same call as :class:`Augment2D`: ``(image (C,D,H,W), mask (D,H,W) or (K,D,H,W), roi
    (D,H,W)) -> the same``. Transforms see the keys ``image``, ``mask`` (always channel-first) and
    ``roi``; give geometric transforms ``keys: [image, mask, roi]`` with ``mode: [bilinear,
    nearest, nearest]`` and ``allow_missing_keys: true`` so labels follow exactly, intensity
    transforms ``keys: [image]``.

    Args:
        transforms: MONAI dictionary transforms (``monai.transforms.*d``).
        seed: seed of every random transform; workers re-seed through :meth:`reseed`.
    """

    def __init__(self, transforms: Sequence, seed: int = 0) -> None:
        from monai.transforms import Compose

        self.compose = Compose(list(transforms))
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.compose.set_random_state(seed=int(seed) % 2**32)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None, roi: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        data = {"image": np.ascontiguousarray(image, dtype=np.float32)}
        multi = mask is not None and mask.ndim == image.ndim
        if mask is not None:
            data["mask"] = np.ascontiguousarray(mask if multi else mask[None])
        if roi is not None:
            data["roi"] = np.ascontiguousarray(roi[None].astype(np.uint8))
        out = self.compose(data)

        def as_np(x: Any) -> np.ndarray:
            return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)

        new_image = np.ascontiguousarray(as_np(out["image"]), dtype=np.float32)
        new_mask = new_roi = None
        if mask is not None:
            m = np.rint(as_np(out["mask"])).astype(mask.dtype)
            new_mask = m if multi else m[0]
        if roi is not None:
            new_roi = as_np(out["roi"])[0] > 0.5
        return new_image, new_mask, new_roi
