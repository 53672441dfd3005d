"""The selection report's figures: the reliability diagram and per-case uncertainty panels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medseg.select.core import Reliability
from medseg.utils.io import save_with


def _save(fig, path: Path) -> Path:
    save_with(path, lambda p: fig.savefig(p, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_reliability(before: Reliability, after: Reliability, temperature: float, path: str | Path) -> Path:
    """Observed frequency against mean predicted probability per bin, before and after scaling."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    for rel, style, label in ((before, "-o", f"T = 1: ECE {before.ece:.4f}"),
                              (after, "-s", f"T = {temperature:.2f}: ECE {after.ece:.4f}")):
        ok = rel.count > 0
        ax.plot(rel.confidence[ok], rel.frequency[ok], style, ms=3, label=label)
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Reliability on out-of-fold pixels")
    return _save(fig, Path(path))


def _slice(a: np.ndarray, index: int | None) -> np.ndarray:
    return a if a.ndim == 2 else a[index]


def plot_uncertainty(label: np.ndarray, pred: np.ndarray, entropy: np.ndarray, disagreement: np.ndarray | None,
                     title: str, path: str | Path) -> Path:
    """Label, prediction, entropy and member-disagreement maps of one case (2D, or the 3D slice with the
    most labelled voxels); all maps ``(*spatial)``, classes merged."""
    index = int(label.reshape(label.shape[0], -1).sum(1).argmax()) if label.ndim == 3 else None
    panels = [("label", _slice(label, index), "gray"), ("prediction", _slice(pred, index), "gray"),
              ("entropy (nats)", _slice(entropy, index), "magma")]
    if disagreement is not None:
        panels.append(("member disagreement (std)", _slice(disagreement, index), "viridis"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (name, img, cmap) in zip(axes, panels):
        im = ax.imshow(img, cmap=cmap, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
        if cmap != "gray":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))
