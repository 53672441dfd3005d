"""Deterministic preprocessing steps, applied once per case before training or inference.

Each step is a small callable ``Case -> Case`` built from config with ``_target_``, so a pipeline
reads like the experiment it describes, e.g. the chained U-Net predecessor project (Francia et al. 2020)::

    preprocess:
      - _target_: medseg.data.preprocess.GreenWeightedGray
      - _target_: medseg.data.preprocess.ZScore
      - _target_: medseg.data.preprocess.MinMax
      - _target_: medseg.data.preprocess.CLAHE
      - _target_: medseg.data.preprocess.Gamma
        gamma: 1.2
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.data.case import Case


def fov_from_image(image: np.ndarray, threshold: float = 0.06) -> np.ndarray:
    """Field of view of a fundus image: the largest bright connected region, holes filled.

    Used where a dataset ships no FOV masks (CHASE_DB1). ``image`` is (C,H,W) in [0,1].
    """
    bright = image.max(axis=0) > threshold
    bright = ndimage.binary_opening(bright, iterations=2)
    labels, n = ndimage.label(bright)
    if n == 0:
        return np.ones(image.shape[1:], bool)
    largest = 1 + int(np.argmax(ndimage.sum(bright, labels, range(1, n + 1))))
    return ndimage.binary_fill_holes(labels == largest)


def _roi_values(case: Case, within_roi: bool) -> np.ndarray | None:
    return case.roi if (within_roi and case.roi is not None and case.roi.any()) else None


class GreenWeightedGray:
    """RGB -> one channel, weighted towards green (vessels contrast best there).

    Default weights are the ITU-R 601 luma (0.299, 0.587, 0.114), the "weighted gray" of the
    chained U-Net predecessor project; pass ``weights=[0, 1, 0]`` for the pure green channel.
    """

    def __init__(self, weights: Sequence[float] = (0.299, 0.587, 0.114)) -> None:
        self.weights = np.asarray(weights, np.float32)

    def __call__(self, case: Case) -> Case:
        if case.image.shape[0] != 3:
            return case
        gray = np.tensordot(self.weights, case.image, axes=1)[None].astype(np.float32)
        return replace(case, image=gray)


def _per_channel(value: float | Sequence[float] | None, channels: int, name: str) -> list[float] | None:
    """One value per channel from a scalar or a per-channel list (``name`` for the error)."""
    if value is None:
        return None
    values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)] * channels
    if len(values) != channels:
        raise ValueError(f"{name}={values}: needs one value or one per channel ({channels})")
    return values


class ZScore:
    """Per-channel zero mean, unit variance (statistics inside the ROI by default).

    ``nonzero=True`` takes the statistics over voxels where any channel is non-zero (the brain of
    a skull-stripped MRI) and leaves the background at 0 (nnU-Net's BraTS normalisation).
    ``mean``/``std`` (one value, or one per channel) replace the per-image statistics with fixed,
    dataset-wide ones: nnU-Net's CT normalisation uses the training foreground's mean and std (after
    :class:`ClipIntensity`), so a Hounsfield value means the same in every case.
    """

    def __init__(self, within_roi: bool = True, eps: float = 1e-6, nonzero: bool = False,
                 mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None) -> None:
        if (mean is None) != (std is None):
            raise ValueError("ZScore: give both mean and std (dataset-wide statistics) or neither (per image)")
        self.within_roi, self.eps, self.nonzero = within_roi, eps, nonzero
        self.mean, self.std = mean, std

    def __call__(self, case: Case) -> Case:
        roi = _roi_values(case, self.within_roi)
        if self.nonzero:
            nz = np.any(case.image != 0, axis=0)
            roi = nz if roi is None else roi & nz
            roi = roi if roi.any() else None
        n = case.image.shape[0]
        means, stds = _per_channel(self.mean, n, "ZScore.mean"), _per_channel(self.std, n, "ZScore.std")
        out = np.empty_like(case.image, dtype=np.float32)
        for c, chan in enumerate(case.image):
            if means is not None and stds is not None:
                mu, sd = means[c], stds[c]
            else:
                vals = chan[roi] if roi is not None else chan
                mu, sd = float(vals.mean()), float(vals.std())
            out[c] = (chan - mu) / (sd + self.eps)
            if roi is not None:
                out[c][~roi] = 0.0
        return replace(case, image=out)


class ClipIntensity:
    """Clip the image to ``[low, high]`` (one value, or one per channel).

    nnU-Net's CT normalisation clips to the 0.5th and 99.5th percentiles of the training
    foreground's intensities before a dataset-wide z-score (``medseg-plan`` writes both steps for
    CT-like data). MONAI's ``ClipIntensityPercentiles`` computes percentiles per image; fixed
    dataset-wide bounds on a :class:`Case` are one ``np.clip``.
    """

    def __init__(self, low: float | Sequence[float] | None = None, high: float | Sequence[float] | None = None) -> None:
        if low is None and high is None:
            raise ValueError("ClipIntensity: give low, high or both")
        self.low, self.high = low, high

    def __call__(self, case: Case) -> Case:
        n = case.image.shape[0]
        lows = _per_channel(self.low, n, "ClipIntensity.low") or [-np.inf] * n
        highs = _per_channel(self.high, n, "ClipIntensity.high") or [np.inf] * n
        if any(lo > hi for lo, hi in zip(lows, highs)):
            raise ValueError(f"ClipIntensity: low {lows} above high {highs}")
        lo = np.asarray(lows, np.float32).reshape(-1, *([1] * (case.image.ndim - 1)))
        hi = np.asarray(highs, np.float32).reshape(lo.shape)
        return replace(case, image=np.clip(case.image, lo, hi).astype(np.float32, copy=False))


class MinMax:
    """Per-channel rescale to [0, 1] (range taken inside the ROI by default, then clipped)."""

    def __init__(self, within_roi: bool = True, eps: float = 1e-6) -> None:
        self.within_roi, self.eps = within_roi, eps

    def __call__(self, case: Case) -> Case:
        roi = _roi_values(case, self.within_roi)
        out = np.empty_like(case.image, dtype=np.float32)
        for c, chan in enumerate(case.image):
            vals = chan[roi] if roi is not None else chan
            lo, hi = float(vals.min()), float(vals.max())
            out[c] = np.clip((chan - lo) / (hi - lo + self.eps), 0.0, 1.0)
        return replace(case, image=out)


class CLAHE:
    """Contrast-limited adaptive histogram equalisation (scikit-image), per channel, on [0,1] input."""

    def __init__(self, clip_limit: float = 0.01, kernel_size: int | None = None) -> None:
        self.clip_limit, self.kernel_size = clip_limit, kernel_size

    def __call__(self, case: Case) -> Case:
        from skimage import exposure

        img = np.clip(case.image, 0.0, 1.0)
        out = np.stack([
            exposure.equalize_adapthist(c, kernel_size=self.kernel_size, clip_limit=self.clip_limit)
            for c in img
        ]).astype(np.float32)
        return replace(case, image=out)


class Gamma:
    """Gamma correction ``x ** gamma`` on [0,1] input (gamma > 1 darkens)."""

    # not monai AdjustContrast: it rescales by the image's own min and range first, so it is not x**g
    # (max difference 0.037 on an image in [0.1, 0.9]: experiments/benchmarks/bench_transforms.py)

    def __init__(self, gamma: float = 1.2) -> None:
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.gamma = gamma

    def __call__(self, case: Case) -> Case:
        return replace(case, image=np.power(np.clip(case.image, 0.0, 1.0), self.gamma).astype(np.float32))


class CropToForeground:
    """Crop to the bounding box of non-zero voxels (any channel), plus ``margin``: the brain of a
    skull-stripped MRI. The box and the original shape go to ``meta["crop_bbox"]`` /
    ``meta["original_shape"]`` so predictions can be pasted back (see :func:`uncrop`).

    Args:
        margin: voxels kept around the box on each side.
        use_roi: crop to the case's ``roi`` when the reader set one (the BraTS brain, found from a
            brain-mask file or the border value: backgrounds that are not zero) instead of non-zero voxels.
        set_roi: also set ``roi`` to the non-zero region (then ``ZScore(within_roi=True)`` is
            "z-score inside the brain" and patch centres stay inside it).
    """

    def __init__(self, margin: int = 0, set_roi: bool = True, use_roi: bool = True) -> None:
        self.margin, self.set_roi, self.use_roi = int(margin), set_roi, use_roi

    def __call__(self, case: Case) -> Case:
        if self.use_roi and case.roi is not None and case.roi.any():
            nonzero = np.asarray(case.roi, bool)  # the reader's brain (mask file or border-value rule)
        else:
            nonzero = np.any(case.image != 0, axis=0)
        if not nonzero.any():
            return case
        box = foreground_box(nonzero, self.margin)
        sl = tuple(slice(a, b) for a, b in box)
        roi = case.roi[sl] if case.roi is not None else None
        if self.set_roi:
            roi = nonzero[sl] if roi is None else (roi & nonzero[sl])
        meta = dict(case.meta, crop_bbox=[list(b) for b in box], original_shape=list(nonzero.shape))
        return replace(case, image=np.ascontiguousarray(case.image[(slice(None),) + sl]),
                       mask=None if case.mask is None else np.ascontiguousarray(case.mask[(Ellipsis,) + sl]),
                       roi=None if roi is None else np.ascontiguousarray(roi), meta=meta)


def foreground_box(nonzero: np.ndarray, margin: int = 0) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` per axis of the box around ``nonzero`` (a non-empty boolean
    ``(*spatial)`` array) plus ``margin``, clipped to the array: MONAI's ``CropForeground`` box
    (``allow_smaller=True``: the image edges bound the box)."""
    import torch
    from monai.transforms import CropForeground

    start, end = CropForeground(select_fn=lambda x: x > 0, margin=int(margin), allow_smaller=True) \
        .compute_bounding_box(torch.from_numpy(nonzero[None].astype(np.uint8)))
    return [(int(a), int(b)) for a, b in zip(start, end)]


def uncrop(array: np.ndarray, meta: dict[str, Any], fill: float = 0) -> np.ndarray:
    """Paste a ``(..., *cropped)`` array back into ``meta["original_shape"]`` (inverse of
    :class:`CropToForeground`); arrays of uncropped cases are returned unchanged."""
    # not CropForeground.inverse: that needs the MetaTensor trace of the crop, which predictions
    # (arrays made later, often saved and reloaded) do not carry; the recorded box is enough
    if "crop_bbox" not in meta:
        return array
    spatial = tuple(meta["original_shape"])
    out = np.full(array.shape[: array.ndim - len(spatial)] + spatial, fill, dtype=array.dtype)
    out[(Ellipsis,) + tuple(slice(a, b) for a, b in meta["crop_bbox"])] = array
    return out


class Resize:
    """Resize to ``size`` (2 or 3 values): image bilinear/trilinear (anti-aliased when shrinking 2D),
    mask and ROI nearest neighbour."""

    # not monai Resize: its anti-aliasing is a Gaussian pre-filter, not torch's antialiased bilinear
    # (which exported packages mirror): up to 0.116 apart on a DRIVE-sized image shrunk 4x
    # (experiments/benchmarks/bench_transforms.py); upsampling and 3D would agree

    def __init__(self, size: Sequence[int]) -> None:
        self.size = tuple(int(s) for s in size)

    def __call__(self, case: Case) -> Case:
        if case.spatial_shape == self.size:
            return case
        import torch
        import torch.nn.functional as F

        nd = len(self.size)
        if nd != len(case.spatial_shape):
            raise ValueError(f"Resize size {self.size} does not match a {len(case.spatial_shape)}D case")
        mode = "bilinear" if nd == 2 else "trilinear"
        t = torch.from_numpy(np.ascontiguousarray(case.image, dtype=np.float32))[None]
        img = F.interpolate(t, size=self.size, mode=mode, align_corners=False,
                            antialias=nd == 2)[0].numpy()
        return replace(case, image=img, mask=None if case.mask is None else resize_nearest(case.mask, self.size),
                       roi=None if case.roi is None else resize_nearest(case.roi, self.size))


def resize_nearest(arr: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a label array ``(*spatial)`` or ``(K, *spatial)`` to ``size``."""
    size = tuple(int(s) for s in size)
    spatial = arr.shape[-len(size):]
    if spatial == size:
        return arr
    idx = [np.minimum((np.arange(n) + 0.5) * s / n, s - 1).astype(int) for n, s in zip(size, spatial)]
    return np.ascontiguousarray(arr[(Ellipsis,) + np.ix_(*idx)])


class FieldOfView:
    """``data.fov: auto``: set ``roi`` to the field of view derived from the image
    (:func:`fov_from_image`: the largest bright region, holes filled) where the reader gives none,
    so fundus-like photos in any layout are scored and sampled inside their FOV."""

    def __init__(self, threshold: float = 0.06) -> None:
        self.threshold = float(threshold)

    def __call__(self, case: Case) -> Case:
        if case.roi is not None or case.image.ndim != 3:
            return case
        return replace(case, roi=fov_from_image(np.clip(case.image, 0, None), self.threshold))


class Resample:
    """``data.max_size`` / ``data.spacing``: bring large images or anisotropic volumes to a working size.

    ``max_size`` scales a case down (aspect kept) until its longest side is at most that many
    pixels; ``spacing`` (3D cases with a spacing) resamples to that voxel size in mm. Images are
    interpolated linearly, masks and ROI by nearest neighbour; the source shape goes to
    ``meta["resampled_from"]`` so predictions can be written back on the source grid.
    """

    def __init__(self, max_size: int | None = None, spacing: Sequence[float] | None = None) -> None:
        self.max_size = None if max_size is None else int(max_size)
        self.spacing = None if spacing is None else tuple(float(s) for s in spacing)

    def target_shape(self, case: Case) -> tuple[int, ...]:
        shape = np.asarray(case.spatial_shape, float)
        if self.spacing is not None and case.spacing is not None and len(case.spacing) >= len(shape):
            if len(self.spacing) != len(shape):
                raise ValueError(f"data.spacing={list(self.spacing)} needs {len(shape)} values for a "
                                 f"{len(shape)}D case")
            shape = shape * np.asarray(case.spacing[: len(shape)], float) / np.asarray(self.spacing)
        if self.max_size is not None and shape.max() > self.max_size:
            shape = shape * self.max_size / shape.max()
        return tuple(max(1, int(round(s))) for s in shape)

    def __call__(self, case: Case) -> Case:
        size = self.target_shape(case)
        if size == case.spatial_shape:
            return case
        old = case.spatial_shape
        out = Resize(size)(case)
        spacing = None if case.spacing is None else tuple(
            float(sp) * o / n for sp, o, n in zip(case.spacing, old, size))
        meta = dict(case.meta, resampled_from=list(old))
        return replace(out, spacing=spacing if case.spacing is not None else None, meta=meta)


class Compose:
    """Apply steps in order."""

    # not monai Compose: it re-raises every error of a step as RuntimeError("applying transform ..."),
    # which would turn a DataError/ConfigError into a traceback (experiments/benchmarks/bench_transforms.py)

    def __init__(self, steps: Sequence[Any] | None) -> None:
        self.steps = list(steps or [])

    def __call__(self, case: Case) -> Case:
        for step in self.steps:
            case = step(case)
        return case
