"""Figures: loss curves and prediction overlays (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medseg.utils.io import save_with


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, 110 dpi, tight box) and close it."""
    save_with(path, lambda p: fig.savefig(p, format=Path(path).suffix.lstrip(".") or "png", dpi=110,
                                          bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def plot_loss_curve(rows: Sequence[dict], path: str | Path) -> Path:
    """Train and validation loss per epoch (plus validation Dice on a second axis when logged)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    epochs = [r["epoch"] + 1 for r in rows]
    for key, style in (("train/loss", "-o"), ("val/loss", "-s")):
        xs = [e for e, r in zip(epochs, rows) if key in r]
        ys = [r[key] for r in rows if key in r]
        if ys:
            ax.plot(xs, ys, style, label=key, markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    dice = [(e, r["val/dice"]) for e, r in zip(epochs, rows) if "val/dice" in r]
    if dice:
        ax2 = ax.twinx()
        ax2.plot(*zip(*dice), "-^", color="tab:green", label="val/dice", markersize=3)
        ax2.set_ylabel("Dice")
        ax2.set_ylim(0, 1)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=8)
    else:
        ax.legend(fontsize=8)
    ax.set_title("Training curves")
    return save_figure(fig, Path(path))


def _display_image(image: np.ndarray) -> np.ndarray:
    """(C,H,W) any range -> (H,W,3) or (H,W) in [0,1] for display."""
    img = image[:3] if image.shape[0] >= 3 else image[:1]
    lo, hi = np.percentile(img, [1, 99])
    img = np.clip((img - lo) / (hi - lo + 1e-8), 0, 1)
    return img.transpose(1, 2, 0) if img.shape[0] == 3 else img[0]


def error_map(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H,W,3): true positives white, false positives red, false negatives blue."""
    rgb = np.zeros(pred.shape + (3,), np.float32)
    rgb[pred & target] = (1, 1, 1)
    rgb[pred & ~target] = (1, 0.15, 0.15)
    rgb[~pred & target] = (0.2, 0.45, 1)
    return rgb


def plot_overlay(image: np.ndarray, target: np.ndarray, pred: np.ndarray, path: str | Path, title: str = "") -> Path:
    """image | ground truth | prediction | errors, for one 2D case (binary maps ``(H, W)``)."""
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.9))
    shown = _display_image(image)
    axes[0].imshow(shown, cmap=None if shown.ndim == 3 else "gray")
    axes[1].imshow(target, cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(pred, cmap="gray", vmin=0, vmax=1)
    axes[3].imshow(error_map(pred.astype(bool), target.astype(bool)))
    for ax, t in zip(axes, ("image", "ground truth", "prediction", "errors (FP red, FN blue)")):
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))


def plot_class_bars(scores: dict[str, Sequence[float]], class_names: Sequence[str], path: str | Path,
                    metric: str = "Dice") -> Path:
    """Grouped bars: mean ``metric`` per class (x) for each model (colour). ``scores[model][k]``."""
    n_models, n_classes = len(scores), len(class_names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * n_classes * max(1, n_models) + 2), 3.8))
    width = 0.8 / max(1, n_models)
    x = np.arange(n_classes)
    for i, (name, vals) in enumerate(scores.items()):
        ax.bar(x + (i - (n_models - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(class_names, rotation=60 if n_classes > 6 else 0, ha="right" if n_classes > 6 else "center",
                       fontsize=8)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{metric} per class")
    return save_figure(fig, Path(path))


def plot_overlay_3d(image: np.ndarray, target: np.ndarray, pred: np.ndarray, path: str | Path, title: str = "",
                    nifti_order: bool = False) -> Path:
    """Axial, coronal and sagittal slices through the centre of the target (the tumour) or, when the
    target is empty, of the prediction. Rows: image | ground truth | prediction | errors.
    ``image``: ``(C, *spatial)``; ``target`` / ``pred``: boolean ``spatial``, either ``(D, H, W)``
    or, with ``nifti_order``, a NIfTI array's own ``(x, y, z)`` order (as the BraTS reader keeps it;
    slices are then rotated so anterior is up)."""
    ref = target if target.any() else pred
    centre = [round(c) for c in np.argwhere(ref).mean(0)] if ref.any() else [s // 2 for s in ref.shape]
    axes_of = {"axial": 2, "coronal": 1, "sagittal": 0} if nifti_order else {"axial": 0, "coronal": 1, "sagittal": 2}
    views = {v: (a, centre[a]) for v, a in axes_of.items()}
    fig, axes = plt.subplots(3, 4, figsize=(12, 9))
    vol = image[0]
    lo, hi = np.percentile(vol, [1, 99])
    for row, (view, (axis, idx)) in enumerate(views.items()):
        def take(a, idx=idx, axis=axis):
            sl = np.take(a, idx, axis=axis)
            return np.rot90(sl) if nifti_order else sl

        axes[row, 0].imshow(np.clip((take(vol) - lo) / (hi - lo + 1e-8), 0, 1), cmap="gray")
        axes[row, 1].imshow(take(target), cmap="gray", vmin=0, vmax=1)
        axes[row, 2].imshow(take(pred), cmap="gray", vmin=0, vmax=1)
        axes[row, 3].imshow(error_map(take(pred).astype(bool), take(target).astype(bool)))
        axes[row, 0].set_ylabel(f"{view} {idx}", fontsize=9)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, t in zip(axes[0], ("image", "ground truth", "prediction", "errors (FP red, FN blue)")):
        ax.set_title(t, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))
