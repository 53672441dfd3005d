"""Standalone runner of a medseg export package: preprocessing, sliding-window inference, TTA, the
fold ensemble, the decision rule and postprocessing, with no medseg, Lightning, Hydra or MONAI.

This one file is copied into every package as ``runner.py``. It needs ``numpy`` and either
``onnxruntime`` (``--engine onnx``, the default) or ``torch`` (``--engine torchscript``), plus
``Pillow`` to read 2D images and ``nibabel`` for NIfTI volumes; ``scipy`` only when the package
asks for connected-component postprocessing, ``scikit-image`` only for a CLAHE preprocessing step.

    python runner.py IMAGE_VOLUME_OR_FOLDER [...] --out predictions/ [--engine onnx|torchscript]
                     [--threads 2] [--roi FOV.png] [--save-probs]

Every step re-implements the medseg step named in ``package.json`` in numpy (tested for equality
with medseg in medseg's test suite): hand-written because the runner must not import medseg or
MONAI. Loading a package checks ``checksums.sha256`` against every file first and refuses a
package written by a newer format version; it never unpickles anything (ONNX / TorchScript + JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: the newest package layout this runner reads (``package.json: format_version``)
#: 2 added ensemble groups (a medseg-select result: fold mean per member, then the weighted member
#: mean), temperature on the combined probabilities and full-connectivity postprocessing
FORMAT_VERSION = 2
CHECKSUMS = "checksums.sha256"
MANIFEST = "package.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


class PackageError(Exception):
    """The package is missing a file, was tampered with, or is from a newer format version."""


class InputError(Exception):
    """An input image or volume cannot be read or does not fit the model."""


# --------------------------------------------------------------------------- package files
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checksums(package: Path) -> dict[str, str]:
    path = package / CHECKSUMS
    if not path.is_file():
        raise PackageError(f"{path}: checksum list missing; the package is incomplete (export it again)")
    sums = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name or name.startswith("/") or ".." in Path(name).parts:
            raise PackageError(f"{path}: line {n} is not '<sha256>  <relative path>'")
        sums[name] = digest
    return sums


def unpack_zip(path: Path) -> Path:
    """Extract a zipped package into a temporary folder (member paths checked: nothing outside it)."""
    import tempfile
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
            if bad:
                raise PackageError(f"{path}: unsafe member paths {bad[:3]}")
            dest = Path(tempfile.mkdtemp(prefix="medseg-package-"))
            import atexit
            import shutil

            atexit.register(shutil.rmtree, dest, True)  # the extracted copy goes when the process ends
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise PackageError(f"{path}: not a zip file ({exc})") from exc
    top = {Path(n).parts[0] for n in names if n.strip("/")}
    return dest / next(iter(top)) if len(top) == 1 and (dest / next(iter(top))).is_dir() else dest


def verify_package(package: str | os.PathLike) -> dict[str, Any]:
    """Check every file against ``checksums.sha256`` and the format version; return ``package.json``.

    Raises :class:`PackageError` naming the file that is missing, altered, unlisted or too new."""
    package = Path(package)
    if not package.is_dir():
        raise PackageError(f"{package}: package folder not found")
    sums = read_checksums(package)
    if MANIFEST not in sums:
        raise PackageError(f"{package / CHECKSUMS}: does not list {MANIFEST}; not a medseg export package")
    for name, digest in sums.items():
        path = package / name
        if not path.is_file():
            raise PackageError(f"{path}: missing from the package (listed in {CHECKSUMS})")
        if sha256_file(path) != digest:
            raise PackageError(f"{path}: checksum mismatch; the file was modified or damaged after export "
                               "(restore it or export the package again)")
    listed = set(sums) | {CHECKSUMS}
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package).as_posix()
        if path.is_file() and rel not in listed and "__pycache__" not in path.parts:
            raise PackageError(f"{path}: not listed in {CHECKSUMS}; files were added after export")
    try:
        manifest = json.loads((package / MANIFEST).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PackageError(f"{package / MANIFEST}: not valid JSON ({exc})") from exc
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise PackageError(f"{package / MANIFEST}: no integer format_version")
    if version > FORMAT_VERSION:
        raise PackageError(f"{package / MANIFEST}: format version {version} is newer than this runner reads "
                           f"({FORMAT_VERSION}); use the runner.py shipped in the package or a newer medseg")
    return manifest


# --------------------------------------------------------------------------- preprocessing
# Each step mirrors the class of the same name in medseg/data/preprocess.py, line for line where
# it is numpy there too. A case is a dict: image (C, *spatial) float32, roi (bool) or None, meta.
def _roi_values(case: dict, within_roi: bool):
    roi = case.get("roi")
    return roi if (within_roi and roi is not None and roi.any()) else None


def green_weighted_gray(case: dict, weights: Sequence[float] = (0.299, 0.587, 0.114)) -> dict:
    if case["image"].shape[0] != 3:
        return case
    w = np.asarray(weights, np.float32)
    return dict(case, image=np.tensordot(w, case["image"], axes=1)[None].astype(np.float32))


def _per_channel(value: Any, channels: int) -> list[float] | None:
    if value is None:
        return None
    values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * channels
    if len(values) != channels:
        raise PackageError(f"{MANIFEST}: {values} needs one value or one per channel ({channels})")
    return values


def zscore(case: dict, within_roi: bool = True, eps: float = 1e-6, nonzero: bool = False,
           mean: Any = None, std: Any = None) -> dict:
    image = case["image"]
    roi = _roi_values(case, within_roi)
    if nonzero:
        nz = np.any(image != 0, axis=0)
        roi = nz if roi is None else roi & nz
        roi = roi if roi.any() else None
    means, stds = _per_channel(mean, image.shape[0]), _per_channel(std, image.shape[0])
    out = np.empty_like(image, dtype=np.float32)
    for c, chan in enumerate(image):
        if means is not None and stds is not None:
            mu, sd = means[c], stds[c]
        else:
            vals = chan[roi] if roi is not None else chan
            mu, sd = float(vals.mean()), float(vals.std())
        out[c] = (chan - mu) / (sd + eps)
        if roi is not None:
            out[c][~roi] = 0.0
    return dict(case, image=out)


def clip_intensity(case: dict, low: Any = None, high: Any = None) -> dict:
    image = case["image"]
    n = image.shape[0]
    lo = np.asarray(_per_channel(low, n) or [-np.inf] * n, np.float32).reshape(-1, *([1] * (image.ndim - 1)))
    hi = np.asarray(_per_channel(high, n) or [np.inf] * n, np.float32).reshape(lo.shape)
    return dict(case, image=np.clip(image, lo, hi).astype(np.float32, copy=False))


def minmax(case: dict, within_roi: bool = True, eps: float = 1e-6) -> dict:
    roi = _roi_values(case, within_roi)
    out = np.empty_like(case["image"], dtype=np.float32)
    for c, chan in enumerate(case["image"]):
        vals = chan[roi] if roi is not None else chan
        lo, hi = float(vals.min()), float(vals.max())
        out[c] = np.clip((chan - lo) / (hi - lo + eps), 0.0, 1.0)
    return dict(case, image=out)


def clahe(case: dict, clip_limit: float = 0.01, kernel_size: int | None = None) -> dict:
    try:
        from skimage import exposure
    except ImportError as exc:  # CLAHE is not re-implemented here: it is scikit-image's algorithm
        raise InputError("this package's preprocessing has a CLAHE step: install scikit-image") from exc
    img = np.clip(case["image"], 0.0, 1.0)
    out = np.stack([exposure.equalize_adapthist(c, kernel_size=kernel_size, clip_limit=clip_limit)
                    for c in img]).astype(np.float32)
    return dict(case, image=out)


def gamma(case: dict, gamma: float = 1.2) -> dict:
    return dict(case, image=np.power(np.clip(case["image"], 0.0, 1.0), gamma).astype(np.float32))


def crop_to_foreground(case: dict, margin: int = 0, set_roi: bool = True, use_roi: bool = True) -> dict:
    image = case["image"]
    if use_roi and case.get("roi") is not None and np.asarray(case["roi"]).any():
        nonzero = np.asarray(case["roi"], bool)  # the brain found when reading (mask file or border value)
    else:
        nonzero = np.any(image != 0, axis=0)
    if not nonzero.any():
        return case
    box = []
    for ax in range(nonzero.ndim):
        other = tuple(a for a in range(nonzero.ndim) if a != ax)
        idx = np.flatnonzero(nonzero.any(axis=other))
        box.append((max(int(idx[0]) - margin, 0), min(int(idx[-1]) + 1 + margin, nonzero.shape[ax])))
    sl = tuple(slice(a, b) for a, b in box)
    roi = case["roi"][sl] if case.get("roi") is not None else None
    if set_roi:
        roi = nonzero[sl] if roi is None else (roi & nonzero[sl])
    meta = dict(case.get("meta", {}), crop_bbox=[list(b) for b in box], original_shape=list(nonzero.shape))
    return dict(case, image=np.ascontiguousarray(image[(slice(None),) + sl]),
                roi=None if roi is None else np.ascontiguousarray(roi), meta=meta)


def uncrop(array: np.ndarray, meta: dict, fill: float = 0) -> np.ndarray:
    """Paste a ``(..., *cropped)`` array back into ``meta["original_shape"]``."""
    if "crop_bbox" not in meta:
        return array
    spatial = tuple(meta["original_shape"])
    out = np.full(array.shape[: array.ndim - len(spatial)] + spatial, fill, dtype=array.dtype)
    out[(Ellipsis,) + tuple(slice(a, b) for a, b in meta["crop_bbox"])] = array
    return out


def _linear_weights(n_in: int, n_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights ``(n_out, taps)`` of PyTorch's linear interpolation with
    ``align_corners=False`` along one axis (``antialias``: its triangle filter widened when shrinking)."""
    scale = n_in / n_out
    if antialias:
        support = scale if scale >= 1.0 else 1.0
        invscale = 1.0 / scale if scale >= 1.0 else 1.0
        taps = int(math.ceil(support)) * 2 + 1
        idx = np.zeros((n_out, taps), np.int64)
        wts = np.zeros((n_out, taps), np.float64)
        for i in range(n_out):
            center = scale * (i + 0.5)
            xmin = max(int(center - support + 0.5), 0)
            xsize = min(int(center + support + 0.5), n_in) - xmin
            j = np.arange(xsize)
            w = np.maximum(0.0, 1.0 - np.abs((j + xmin - center + 0.5) * invscale))
            total = w.sum()
            idx[i, :xsize] = xmin + j
            wts[i, :xsize] = w / total if total != 0 else w
        return idx, wts
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = src - i0
    return np.stack([i0, i1], 1), np.stack([1.0 - l1, l1], 1)


def resize_linear(array: np.ndarray, size: Sequence[int], antialias: bool = False) -> np.ndarray:
    """``(C, *spatial)`` float array resized like ``F.interpolate(mode="bilinear"/"trilinear",
    align_corners=False, antialias=antialias)``, one axis at a time (linear interpolation is separable)."""
    out = np.asarray(array, np.float32)
    nd = len(size)
    for ax in reversed(range(nd)):
        axis = out.ndim - nd + ax
        n_in, n_out = out.shape[axis], int(size[ax])
        if n_in == n_out and not antialias:
            continue
        idx, wts = _linear_weights(n_in, n_out, antialias)
        moved = np.moveaxis(out, axis, -1)
        acc = np.zeros(moved.shape[:-1] + (n_out,), np.float32)
        for t in range(idx.shape[1]):
            acc += moved[..., idx[:, t]] * wts[:, t].astype(np.float32)
        out = np.moveaxis(acc, -1, axis)
    return np.ascontiguousarray(out)


def resize_nearest(arr: np.ndarray, size: Sequence[int]) -> np.ndarray:
    size = tuple(int(s) for s in size)
    spatial = arr.shape[-len(size):]
    if spatial == size:
        return arr
    idx = [np.minimum((np.arange(n) + 0.5) * s / n, s - 1).astype(int) for n, s in zip(size, spatial)]
    return np.ascontiguousarray(arr[(Ellipsis,) + np.ix_(*idx)])


def resize(case: dict, size: Sequence[int]) -> dict:
    size = tuple(int(s) for s in size)
    spatial = tuple(case["image"].shape[1:])
    if spatial == size:
        return case
    if len(size) != len(spatial):
        raise InputError(f"Resize size {size} does not match a {len(spatial)}D image")
    roi = case.get("roi")
    return dict(case, image=resize_linear(case["image"], size, antialias=len(size) == 2),
                roi=None if roi is None else resize_nearest(roi, size))


STEPS: dict[str, Callable[..., dict]] = {
    "GreenWeightedGray": green_weighted_gray, "ZScore": zscore, "ClipIntensity": clip_intensity, "MinMax": minmax,
    "CLAHE": clahe, "Gamma": gamma, "CropToForeground": crop_to_foreground, "Resize": resize,
}


def preprocess(case: dict, steps: Sequence[dict]) -> dict:
    for step in steps:
        fn = STEPS.get(step["name"])
        if fn is None:
            raise PackageError(f"{MANIFEST}: unknown preprocessing step {step['name']!r}")
        case = fn(case, **step.get("args", {}))
    return case


# --------------------------------------------------------------------------- inference
def gaussian_importance(patch: Sequence[int], sigma_scale: float = 0.125, mode: str = "gaussian") -> np.ndarray:
    """MONAI's ``compute_importance_map``: separable Gaussian, sigma = 0.125 x window, floored at its
    minimum (>= 1e-3)."""
    if mode == "constant":
        return np.ones(tuple(patch), np.float32)
    imp = np.ones((), np.float32)
    for i, p in enumerate(patch):
        x = np.arange(-(p - 1) / 2.0, (p - 1) / 2.0 + 1, dtype=np.float32)
        x = np.exp(x ** 2 / np.float32(-2 * (p * sigma_scale) ** 2)).astype(np.float32)
        imp = imp[..., None] * x[(None,) * i]  # the outer product of the axes' Gaussians
    return np.maximum(imp, max(float(imp.min()), 1e-3)).astype(np.float32)


def window_starts(image_size: Sequence[int], roi: Sequence[int], overlap: float) -> list[list[int]]:
    """Window origins per axis, as MONAI's ``dense_patch_slices`` places them."""
    starts = []
    for n, r in zip(image_size, roi):
        step = r if r == n else max(int(r * (1 - overlap)), 1)
        count = next((d for d in range(int(math.ceil(n / step))) if d * step + r >= n), 0) + 1
        starts.append([i * step - max(i * step + r - n, 0) for i in range(count)])
    return starts


def sliding_window(net: Callable[[np.ndarray], np.ndarray], image: np.ndarray, roi_size: Sequence[int],
                   sw_batch_size: int, overlap: float = 0.25, blend: str = "gaussian",
                   sigma_scale: float = 0.125) -> np.ndarray:
    """``(1, C, *spatial)`` -> logits ``(1, C', *spatial)``; the same windows, weights and order as
    MONAI's ``sliding_window_inference`` (constant padding when the image is smaller than a window)."""
    spatial = image.shape[2:]
    roi = tuple(int(r) if r and r > 0 else s for r, s in zip(roi_size, spatial))
    pads = [(0, 0), (0, 0)] + [((max(r - s, 0)) // 2, max(r - s, 0) - max(r - s, 0) // 2) for r, s in zip(roi, spatial)]
    if any(p for pair in pads for p in pair):
        image = np.pad(image, pads, mode="constant")
    size = image.shape[2:]
    grids = np.meshgrid(*window_starts(size, roi, overlap), indexing="ij")
    origins = np.stack([g.ravel() for g in grids], 1)
    weight = gaussian_importance(roi, sigma_scale, blend)
    out: np.ndarray | None = None
    count = np.zeros(size, np.float32)
    for b in range(0, len(origins), sw_batch_size):
        batch = origins[b:b + sw_batch_size]
        slices = [tuple(slice(int(o), int(o) + r) for o, r in zip(org, roi)) for org in batch]
        windows = np.concatenate([image[(slice(0, 1), slice(None)) + s] for s in slices])
        logits = np.asarray(net(np.ascontiguousarray(windows)), np.float32)
        if out is None:
            out = np.zeros((1, logits.shape[1], *size), np.float32)
            for org in origins:
                count[tuple(slice(int(o), int(o) + r) for o, r in zip(org, roi))] += weight
        for k, s in enumerate(slices):
            out[(0, slice(None)) + s] += logits[k] * weight
    assert out is not None  # there is at least one window
    out /= count
    crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads[2:], spatial))
    return np.ascontiguousarray(out[(slice(None), slice(None)) + crop])


def pad_run_crop(net: Callable[[np.ndarray], np.ndarray], image: np.ndarray, divisor: int) -> np.ndarray:
    """medseg's ``whole`` mode: zero-pad to a multiple of ``divisor`` (centred), run once, crop back."""
    spatial = image.shape[2:]
    pads = [(0, 0), (0, 0)] + [((-s) % divisor // 2, (-s) % divisor - (-s) % divisor // 2) for s in spatial]
    out = np.asarray(net(np.pad(image, pads, mode="constant")), np.float32)
    return out[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for (lo, _), s in zip(pads[2:], spatial))]


def predict_logits(net: Callable[[np.ndarray], np.ndarray], image: np.ndarray, inference: dict) -> np.ndarray:
    mode = inference["mode"]
    if mode == "sliding_window":
        return sliding_window(net, image, inference["roi_size"], int(inference["sw_batch_size"]),
                              float(inference["overlap"]), inference.get("blend", "gaussian"),
                              float(inference.get("sigma_scale", 0.125)))
    if mode == "resize":
        spatial = image.shape[2:]
        small = resize_linear(image[0], inference["resize_to"])[None]
        return resize_linear(np.asarray(net(small), np.float32)[0], spatial)[None]
    if mode == "whole":
        return pad_run_crop(net, image, int(inference["size_divisor"]))
    raise PackageError(f"{MANIFEST}: unknown inference mode {mode!r}")


def activation(logits: np.ndarray, task: str) -> np.ndarray:
    if task == "multiclass":
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def tta_transforms(spatial_dims: int, flips: bool = True, rot90: bool = True) -> list[tuple[tuple[int, ...], int]]:
    """medseg's TTA set (``medseg/inference/tta.py``): D4 in 2D, the 8 flip combinations in 3D."""
    dims = list(range(2, 2 + spatial_dims))
    flip_sets: list[tuple[int, ...]] = [()]
    if flips:
        if spatial_dims == 2:
            flip_sets += [(dims[1],)]
        else:
            flip_sets += [tuple(d for j, d in enumerate(dims) if mask >> j & 1) for mask in range(1, 8)]
    rots = range(4) if (rot90 and spatial_dims == 2) else range(1)
    if spatial_dims == 2 and flips and not rot90:
        flip_sets = [(), (dims[0],), (dims[1],), tuple(dims)]
    return [(f, r) for f in flip_sets for r in rots]


def _tta_forward(x: np.ndarray, t) -> np.ndarray:
    flip, rot = t
    if flip:
        x = np.flip(x, flip)
    return np.ascontiguousarray(np.rot90(x, rot, axes=(-2, -1)) if rot else x)


def _tta_inverse(x: np.ndarray, t) -> np.ndarray:
    flip, rot = t
    if rot:
        x = np.rot90(x, -rot, axes=(-2, -1))
    return np.ascontiguousarray(np.flip(x, flip) if flip else x)


# --------------------------------------------------------------------------- engines
def load_engine(path: Path, engine: str, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A ``windows (B, C, *spatial) -> logits`` function for one exported network."""
    if engine == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise PackageError("engine onnx needs onnxruntime: pip install onnxruntime") from exc
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise PackageError(f"{path}: onnxruntime cannot load the network ({exc})") from exc
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]
    if engine == "torchscript":
        try:
            import torch
        except ImportError as exc:
            raise PackageError("engine torchscript needs torch") from exc
        if threads:
            torch.set_num_threads(int(threads))
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still supported
                module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # torch raises RuntimeError subclasses for broken archives
            raise PackageError(f"{path}: torch cannot load the TorchScript network ({exc})") from exc

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
        return run
    raise PackageError(f"unknown engine {engine!r}: choose onnx or torchscript")


# --------------------------------------------------------------------------- the model
class Model:
    """An exported package, verified and ready: ``Model(folder).predict(image, roi)``."""

    def __init__(self, package: str | os.PathLike, engine: str | None = None, threads: int | None = None,
                 verify: bool = True) -> None:
        self.dir = Path(package)
        if self.dir.is_file() and self.dir.suffix == ".zip":
            self.dir = unpack_zip(self.dir)
        self.manifest = verify_package(self.dir) if verify else json.loads((self.dir / MANIFEST).read_text())
        m = self.manifest
        self.task, self.classes = m["task"]["kind"], list(m["task"]["classes"])
        self.spatial_dims = int(m["input"]["spatial_dims"])
        available = [e for e in ("onnx", "torchscript") if all(e in mem["files"] for mem in m["members"])]
        engine = engine or (available[0] if available else "onnx")
        if engine not in available:
            raise PackageError(f"{self.dir / MANIFEST}: no {engine} networks in this package (has: {available})")
        self.engine = engine
        self.nets = [load_engine(self.dir / mem["files"][engine], engine, threads) for mem in m["members"]]
        # groups: per medseg-select member, the indices of its networks (its folds); weights per group
        self.groups = m["ensemble"].get("groups") or [[k] for k in range(len(self.nets))]
        weights = m["ensemble"].get("weights") or [1.0] * len(self.groups)
        if len(weights) != len(self.groups) or sorted(k for g in self.groups for k in g) != list(range(len(self.nets))):
            raise PackageError(f"{self.dir / MANIFEST}: ensemble groups/weights do not match the {len(self.nets)} networks")
        total = float(sum(weights))
        self.weights = [float(w) / total for w in weights]
        decision = m["decision"]
        self.thresholds = np.asarray(decision.get("thresholds") or [0.5] * len(self.classes), np.float32)
        self.temperature = float(decision.get("temperature") or 1.0)
        # "logits": each network's logits / T (medseg-export temperature=); "probabilities": the ensemble's
        # probabilities recalibrated as medseg-select's Selection.combine does
        self.temperature_on = str(decision.get("temperature_on") or "logits")
        if self.temperature_on not in ("logits", "probabilities"):
            raise PackageError(f"{self.dir / MANIFEST}: decision.temperature_on must be logits or probabilities")

    # one member with TTA
    def _member_probs(self, net, image: np.ndarray) -> np.ndarray:
        inference, tta = self.manifest["inference"], self.manifest.get("tta") or {}

        def probs(x: np.ndarray) -> np.ndarray:
            logits = predict_logits(net, x, inference)
            scale = self.temperature != 1.0 and self.temperature_on == "logits"
            return activation(logits / self.temperature if scale else logits, self.task)

        if not tta.get("enabled"):
            return probs(image)
        transforms = tta_transforms(self.spatial_dims, bool(tta.get("flips", True)), bool(tta.get("rot90", True)))
        total = _tta_inverse(probs(_tta_forward(image, transforms[0])), transforms[0])  # the identity
        for t in transforms[1:]:
            total = total + _tta_inverse(probs(_tta_forward(image, t)), t)
        return total / len(transforms)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Preprocessed ``(C, *spatial)`` -> ensemble probabilities ``(C', *spatial)``."""
        x = np.ascontiguousarray(image, np.float32)[None]
        members = []
        for group in self.groups:  # the mean of a member's folds (medseg's inference.ensemble.combine)
            share = 1.0 / len(group)
            fold_mean = self._member_probs(self.nets[group[0]], x)[0].astype(np.float32) * share
            for k in group[1:]:
                fold_mean = fold_mean + self._member_probs(self.nets[k], x)[0].astype(np.float32) * share
            members.append(fold_mean)
        out = members[0]
        if len(members) > 1:  # the weighted mean of the members, as medseg's Selection.combine
            out = members[0] * self.weights[0]
            for p, w in zip(members[1:], self.weights[1:]):
                out = out + p * w
        if self.temperature_on == "probabilities" and self.temperature != 1.0:
            out = recalibrate(out, self.task, self.temperature)
        return out.astype(np.float32)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities ``(C, ...)`` -> boolean foreground maps ``(K, ...)`` (medseg's ``Task.discretize``)."""
        if self.task == "multiclass":
            labels = probs.argmax(axis=0)
            masks = np.stack([labels == k for k in range(1, probs.shape[0])])
        else:
            masks = probs > self.thresholds.reshape((-1,) + (1,) * (probs.ndim - 1))
        return postprocess(masks, self.manifest.get("postprocessing") or {}, self.classes)

    def preprocess(self, image: np.ndarray, roi: np.ndarray | None = None, meta: dict | None = None) -> dict:
        case = {"image": np.ascontiguousarray(image, np.float32), "roi": roi, "meta": dict(meta or {})}
        return preprocess(case, self.manifest["preprocessing"]["steps"])

    def predict(self, image: np.ndarray, roi: np.ndarray | None = None, meta: dict | None = None) -> dict:
        """Read image ``(C, *spatial)`` (scaled like medseg's readers) -> ``{"probs", "masks", "case"}`` on
        the preprocessed grid; :func:`uncrop` with ``case["meta"]`` puts them back on the input grid."""
        case = self.preprocess(image, roi, meta)
        expected = int(self.manifest["network"]["in_channels"])
        if case["image"].shape[0] != expected:
            raise InputError(f"{case['image'].shape[0]} channels after preprocessing, the model takes {expected}")
        probs = self.probabilities(case["image"])
        return {"probs": probs, "masks": self.decide(probs), "case": case}


def recalibrate(probs: np.ndarray, task: str, temperature: float) -> np.ndarray:
    """Temperature scaling of combined probabilities ``(C, ...)``, as medseg's ``Selection.combine``:
    clip to [1e-7, 1 - 1e-7], back to logits (log for multi-class, logit otherwise), divide by T, activate."""
    q = np.clip(probs.astype(np.float32), 1e-7, 1 - 1e-7)
    if task == "multiclass":
        z = np.log(q) / np.float32(temperature)
        e = np.exp(z - z.max(axis=0, keepdims=True))
        return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)
    z = (np.log(q) - np.log1p(-q)) / np.float32(temperature)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def postprocess(masks: np.ndarray, spec: dict, classes: Sequence[str]) -> np.ndarray:
    """Per class (``spec[class] = {"largest_component": bool, "min_size": float, "connectivity":
    "face" | "full"}``): keep the largest connected component and/or drop components smaller than
    ``min_size`` pixels/voxels. Components touch by faces (4 / 6 neighbours) unless ``connectivity``
    is ``full`` (8 / 26, medseg-select's rules)."""
    if not spec:
        return masks
    from scipy import ndimage  # only packages with postprocessing need scipy

    out = masks.copy()
    for k, name in enumerate(classes):
        rule = spec.get(name) or {}
        if not (rule.get("largest_component") or rule.get("min_size")):
            continue
        structure = np.ones((3,) * out[k].ndim, bool) if rule.get("connectivity") == "full" else None
        labels, n = ndimage.label(out[k], structure=structure)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.ones(n, bool)
        if rule.get("min_size"):
            keep &= sizes >= float(rule["min_size"])
        if rule.get("largest_component"):
            keep &= np.arange(n) == int(np.argmax(sizes))
        out[k] = np.concatenate([[False], keep])[labels]
    return out


# --------------------------------------------------------------------------- reading and writing
def read_input(path: str | os.PathLike, channels: int) -> dict:
    """One 2D image (scaled to [0, 1] as medseg's readers do) or a NIfTI volume (3D: one channel;
    4D: channels last). Returns a case dict with ``meta`` (affine, source, case_id)."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if name.endswith((".nii", ".nii.gz")):
        try:
            import nibabel as nib
        except ImportError as exc:
            raise InputError("reading NIfTI needs nibabel: pip install nibabel") from exc
        try:
            img: Any = nib.load(str(path))  # a Nifti1Image (nibabel types load() as its base class)
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as exc:  # nibabel raises several types for broken files
            raise InputError(f"{path}: cannot read NIfTI ({exc})") from exc
        image = data[None] if data.ndim == 3 else np.moveaxis(data, -1, 0)
        case_id = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else path.stem
        meta = {"affine": img.affine, "source": str(path), "case_id": case_id,
                "spacing": [float(z) for z in img.header.get_zooms()[:3]]}
    else:
        try:
            from PIL import Image
        except ImportError as exc:
            raise InputError("reading images needs Pillow: pip install pillow") from exc
        mode = "RGB" if channels == 3 else "L" if channels == 1 else None
        try:
            with Image.open(path) as opened:
                opened.load()
                im = opened.convert(mode) if mode is not None and opened.mode != mode else opened
                raw = np.asarray(im).copy()
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError for broken files
            raise InputError(f"{path}: cannot read image ({exc})") from exc
        scale = 65535.0 if raw.dtype == np.uint16 else 255.0 if raw.dtype == np.uint8 else 1.0
        image = (raw[None] if raw.ndim == 2 else raw.transpose(2, 0, 1)).astype(np.float32) / scale
        meta = {"source": str(path), "case_id": path.stem}
    if image.shape[0] != channels:
        raise InputError(f"{path}: {image.shape[0]} channels, the model takes {channels}")
    if not np.isfinite(image).all():
        raise InputError(f"{path}: image contains NaN or infinite values")
    return {"image": np.ascontiguousarray(image), "roi": None, "meta": meta}


def read_case_folder(folder: str | os.PathLike, modalities: Sequence[str]) -> dict:
    """One case stored as a NIfTI file per modality (``<case>_flair.nii.gz``, ``<case>_t1.nii.gz``...,
    the BraTS layout), stacked in the package's channel order."""
    import re

    folder = Path(folder)
    try:
        import nibabel as nib
    except ImportError as exc:
        raise InputError("reading NIfTI needs nibabel: pip install nibabel") from exc
    channels: list[np.ndarray] = []
    img: Any = None  # the last modality's Nifti1Image: its affine and zooms go into the metadata
    for m in modalities:
        found = sorted(f for f in folder.iterdir() if re.search(rf"[_-]{re.escape(m)}\.nii(\.gz)?$", f.name, re.I))
        if len(found) != 1:
            raise InputError(f"{folder}: expected one *_{m}.nii.gz file, found {len(found)} "
                             f"(the model takes {', '.join(modalities)})")
        try:
            img = nib.load(str(found[0]))
            channels.append(np.asarray(img.dataobj, dtype=np.float32))
        except Exception as exc:  # nibabel raises several types for broken files
            raise InputError(f"{found[0]}: cannot read NIfTI ({exc})") from exc
        if channels[-1].shape != channels[0].shape:
            raise InputError(f"{found[0]}: shape {channels[-1].shape} differs from {channels[0].shape}")
    image = np.stack(channels)
    if not np.isfinite(image).all():
        raise InputError(f"{folder}: image contains NaN or infinite values")
    meta = {"affine": img.affine, "source": str(folder), "case_id": folder.name,
            "spacing": [float(z) for z in img.header.get_zooms()[:3]]}
    return {"image": np.ascontiguousarray(image), "roi": _brain(folder, image), "meta": meta}


def border_background(volume: np.ndarray) -> float:
    """The most frequent value on the faces of a volume (medseg's BraTS reader's background rule)."""
    faces = np.concatenate([np.take(volume, i, axis=a).ravel() for a in range(volume.ndim) for i in (0, -1)])
    values, counts = np.unique(faces, return_counts=True)
    return float(values[np.argmax(counts)])


def _brain(folder: Path, image: np.ndarray) -> np.ndarray:
    """The brain as medseg's BraTS reader finds it: a ``*brainmask*`` NIfTI in the case folder, else the
    voxels where any channel differs from its most frequent border value."""
    import re

    import nibabel as nib

    masks = sorted(f for f in folder.iterdir() if re.search(r"brain_?mask\.nii(\.gz)?$", f.name, re.I))
    if masks:
        mask_img: Any = nib.load(str(masks[0]))
        brain = np.asarray(mask_img.dataobj) > 0
        if brain.shape == image.shape[1:] and brain.any():
            return brain
    bg = np.asarray([border_background(c) for c in image], np.float32).reshape((-1,) + (1,) * (image.ndim - 1))
    return np.any(image != bg, axis=0)


def is_case_folder(folder: Path, modalities: Sequence[str] | None) -> bool:
    if not modalities:
        return False
    return folder.is_dir() and all(
        any(f.name.lower().endswith((f"_{m}.nii.gz", f"_{m}.nii")) for f in folder.iterdir()) for m in modalities)


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_outputs(model: Model, result: dict, out_dir: Path, save_probs: bool = False) -> list[Path]:
    """Masks in medseg-predict's conventions: PNG (binary 0/255, multi-class index, multi-label one
    PNG per class in ``<case>/``) or NIfTI labels with the source affine (BraTS regions -> 0/1/2/4)."""
    meta = result["case"]["meta"]
    case_id = meta.get("case_id", "case")
    masks = uncrop(result["masks"], meta, fill=False)
    written = []
    if model.spatial_dims == 2:
        from PIL import Image

        def png(path: Path, arr: np.ndarray) -> Path:
            _write_atomic(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))
            return path
        if model.task == "binary":
            written.append(png(out_dir / "masks" / f"{case_id}.png", (masks[0] * 255).astype(np.uint8)))
        elif model.task == "multilabel":
            written += [png(out_dir / "masks" / case_id / f"{n}.png", (masks[k] * 255).astype(np.uint8))
                        for k, n in enumerate(model.classes)]
        else:
            labels = _label_map(masks)
            written.append(png(out_dir / "masks" / f"{case_id}.png", labels.astype(np.uint8) if labels.max() < 256 else labels))
        if save_probs:
            probs = uncrop(result["probs"], meta)
            path = out_dir / "probs" / f"{case_id}.npy"
            def save(p: Path) -> None:
                with open(p, "wb") as f:  # a file object: np.save would append .npy to the tmp name
                    np.save(f, probs.astype(np.float32))
            _write_atomic(path, save)
            written.append(path)
        return written
    import nibabel as nib

    affine = meta.get("affine")
    if affine is None:
        affine = np.diag([*(meta.get("spacing") or [1.0, 1.0, 1.0]), 1.0])
    if model.task == "multilabel":
        if len(model.classes) == 3:  # nested BraTS regions WT, TC, ET -> labels 0/1/2/4, as medseg writes
            labels = np.zeros(masks.shape[1:], np.uint8)
            labels[masks[0]], labels[masks[1]], labels[masks[2]] = 2, 1, 4
        else:
            labels = np.moveaxis(masks.astype(np.uint8), 0, -1)
    else:
        labels = _label_map(masks)
        values = model.manifest.get("output", {}).get("nifti_label_values")
        if values:
            labels = np.asarray(values, np.uint16)[labels]
        labels = labels.astype(np.uint8) if labels.max() < 256 else labels

    def nifti(path: Path, data: np.ndarray) -> Path:
        img = nib.Nifti1Image(data, affine)
        img.header.set_data_dtype(data.dtype)
        _write_atomic(path, lambda p: p.write_bytes(__import__("gzip").compress(img.to_bytes(), compresslevel=4)))
        return path
    written.append(nifti(out_dir / "masks" / f"{case_id}.nii.gz", labels))
    if save_probs:
        probs = np.moveaxis(uncrop(result["probs"], meta), 0, -1).astype(np.float32)
        written.append(nifti(out_dir / "probs" / f"{case_id}.nii.gz", probs))
    return written


def _label_map(masks: np.ndarray) -> np.ndarray:
    labels = np.zeros(masks.shape[1:], np.uint16)
    for k in range(masks.shape[0]):
        labels[masks[k]] = k + 1
    return labels


def input_files(paths: Sequence[str], modalities: Sequence[str] | None = None) -> list[Path]:
    """Files and case folders to predict: a folder is one case when it holds a NIfTI per modality,
    else a folder of inputs (each of its case folders, images and volumes)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if is_case_folder(p, modalities):
            files.append(p)
        elif p.is_dir():
            cases = sorted(f for f in p.iterdir() if is_case_folder(f, modalities))
            if cases:
                files += cases
                continue
            found = sorted(f for f in p.iterdir() if f.name.lower().endswith((*IMAGE_SUFFIXES, ".nii", ".nii.gz")))
            if not found:
                raise InputError(f"{p}: no images (png, jpg, tif, bmp, gif) or NIfTI volumes found")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a medseg export package on images or NIfTI volumes.")
    parser.add_argument("inputs", nargs="+", help="image / NIfTI files, case folders (one NIfTI per "
                        "modality, e.g. BraTS) or folders of them")
    parser.add_argument("--out", required=True, help="output folder (masks/, probs/, predictions.csv)")
    parser.add_argument("--package", default=str(Path(__file__).resolve().parent),
                        help="the package folder (default: the folder holding this runner)")
    parser.add_argument("--engine", choices=("onnx", "torchscript"), default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    parser.add_argument("--roi", default=None, help="a region-of-interest mask (2D PNG) for one input, "
                        "used by ROI-based normalisation (the DRIVE field of view)")
    parser.add_argument("--save-probs", action="store_true", help="also write the probability maps")
    args = parser.parse_args(argv)
    try:
        model = Model(args.package, engine=args.engine, threads=args.threads)
        modalities = model.manifest["input"].get("modalities")
        files = input_files(args.inputs, modalities)
        out = Path(args.out)
        rows = ["case_id,files," + ",".join(f"fraction_{n}" for n in model.classes)]
        for path in files:
            if path.is_dir():
                case = read_case_folder(path, modalities)
            else:
                case = read_input(path, int(model.manifest["input"]["channels"]))
            roi = None
            if args.roi:
                roi_case = read_input(args.roi, 1)
                roi = roi_case["image"][0] > 0.5
                if roi.shape != case["image"].shape[1:]:
                    raise InputError(f"{args.roi}: ROI shape {roi.shape} differs from {path}'s {case['image'].shape[1:]}")
            result = model.predict(case["image"], roi, case["meta"])
            written = write_outputs(model, result, out, args.save_probs)
            fractions = ",".join(f"{float(m.mean()):.6f}" for m in result["masks"])
            rows.append(f"{case['meta']['case_id']},{';'.join(str(p.relative_to(out)) for p in written)},{fractions}")
            print(f"{path} -> {', '.join(str(p) for p in written)}")
        _write_atomic(out / "predictions.csv", lambda p: p.write_text("\n".join(rows) + "\n"))
    except (PackageError, InputError) as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 4 if isinstance(exc, PackageError) else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
