"""Per-case metrics: medseg against MONAI and torchmetrics on the same masks, same run.

Two structured (not noise) prediction/target pairs:

* 2D: 29-class multi-label 2048x2048 (hand-bone X-ray size): one random ellipse per class, the
  prediction shifted by a few pixels, dilated or eroded, with a spurious blob in some classes;
* 3D: BraTS size 240x240x155, three nested regions (WT > TC > ET) as ellipsoids, prediction
  shifted and dilated/eroded, spacing (1.0, 1.0, 1.5) mm for the surface metrics.

Compared, per class, on one case:

* Dice + IoU: ``medseg.metrics.overlap.overlap_metrics`` (all seven overlap metrics) against MONAI
  ``compute_dice`` + ``compute_iou`` and torchmetrics ``dice_score`` + ``mean_iou``;
* HD95 and NSD (tolerance 1 mm): ``medseg.metrics.surface`` against MONAI
  ``compute_hausdorff_distance(percentile=95)`` and ``compute_surface_dice``;
* HD (maximum): ``medseg.metrics.surface.hd95(percentile=100)`` against torchmetrics
  ``hausdorff_distance`` (torchmetrics has no percentile; its distance transform is 2D only) - only
  with ``--torchmetrics-hd``: it is very slow at these sizes (seconds already at 256x256 x 5).

Reported: max |difference| of the values and the time ratio (medseg / peer; < 1 means medseg is
faster), median of ``--repeats`` interleaved calls.

Run:  python experiments/benchmarks/bench_metrics.py            (about 3 minutes on 2 CPU cores)
Not a test: the times depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header

from medseg.metrics.overlap import overlap_metrics
from medseg.metrics.surface import hd95, normalized_surface_dice


def _ellipse(shape: tuple[int, ...], centre, radii) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0


def _perturb(mask: np.ndarray, rng: np.random.Generator, max_shift: int = 4) -> np.ndarray:
    out = np.roll(mask, tuple(int(s) for s in rng.integers(-max_shift, max_shift + 1, mask.ndim)),
                  axis=tuple(range(mask.ndim)))
    it = int(rng.integers(1, 3))
    if rng.random() < 0.5:
        eroded = ndimage.binary_erosion(out, iterations=it)
        if eroded.any():  # never erase a small structure
            return eroded
    return ndimage.binary_dilation(out, iterations=it)


def masks_2d(size: int = 2048, classes: int = 29, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(K, size, size)`` boolean target and prediction: one ellipse per class, perturbed."""
    rng = np.random.default_rng(seed)
    target = np.zeros((classes, size, size), bool)
    pred = np.zeros_like(target)
    for k in range(classes):
        centre = rng.uniform(0.15, 0.85, 2) * size
        radii = rng.uniform(0.02, 0.09, 2) * size
        target[k] = _ellipse((size, size), centre, radii)
        pred[k] = _perturb(target[k], rng, max(1, size // 256))
        if rng.random() < 0.3:  # a false-positive blob far away
            pred[k] |= _ellipse((size, size), rng.uniform(0.05, 0.95, 2) * size, (size * 0.01,) * 2)
    return pred, target


def masks_3d(shape: tuple[int, int, int] = (240, 240, 155), seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(3, *shape)`` boolean nested BraTS regions (WT, TC, ET) and a perturbed prediction."""
    rng = np.random.default_rng(seed)
    centre = np.asarray(shape) * rng.uniform(0.4, 0.6, 3)
    scale = np.asarray(shape) / 240.0
    target = np.stack([_ellipse(shape, centre, np.array(r) * scale) for r in ((40, 34, 30), (24, 20, 18), (14, 12, 10))])
    target[2] &= ~_ellipse(shape, centre, np.array((8, 7, 6)) * scale)  # necrotic core inside the ET shell
    pred = np.stack([_perturb(t, rng, max(1, int(3 * scale[0]))) for t in target])
    return pred, target


def _median_times(fns: dict[str, Callable[[], np.ndarray]], repeats: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Interleaved repeats of each function: median seconds and the (last) values."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    values: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            values[name] = np.asarray(fn(), dtype=np.float64).reshape(-1)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, values


def overlap_fns(pred: np.ndarray, target: np.ndarray) -> dict[str, dict[str, Callable[[], np.ndarray]]]:
    """Dice and IoU per class from each library on the same ``(K, *spatial)`` masks."""
    from monai.metrics import compute_dice, compute_iou
    from torchmetrics.functional.segmentation import dice_score, mean_iou

    p, t = torch.from_numpy(pred)[None], torch.from_numpy(target)[None]
    k = pred.shape[0]

    def ours():
        m = overlap_metrics(p, t)
        return torch.cat([m["dice"][0], m["iou"][0]]).numpy()

    def monai():
        return torch.cat([compute_dice(p, t, ignore_empty=False)[0], compute_iou(p, t, ignore_empty=False)[0]]).numpy()

    def tm():
        pi, ti = p.long(), t.long()
        d = dice_score(pi, ti, num_classes=k, average="none", input_format="one-hot")[0]
        iou = mean_iou(pi, ti, num_classes=k, per_class=True, input_format="one-hot")[0]
        return torch.cat([d, iou]).numpy()

    return {"medseg": ours, "MONAI": monai, "torchmetrics": tm}


def surface_fns(pred: np.ndarray, target: np.ndarray, spacing, torchmetrics_hd: bool):
    """HD95 / NSD / max-HD per class from each library; returns ``{metric: {library: fn}}``."""
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    p, t = torch.from_numpy(pred)[None], torch.from_numpy(target)[None]
    k = pred.shape[0]
    sp = list(spacing)
    out = {
        "HD95": {
            "medseg": lambda: np.array([hd95(pred[i], target[i], spacing=spacing) for i in range(k)]),
            "MONAI": lambda: compute_hausdorff_distance(p, t, include_background=True, percentile=95,
                                                        spacing=sp)[0].numpy(),
        },
        "NSD (1 mm)": {
            "medseg": lambda: np.array([normalized_surface_dice(pred[i], target[i], tolerance=1.0, spacing=spacing) for i in range(k)]),
            "MONAI": lambda: compute_surface_dice(p, t, [1.0] * k, include_background=True, spacing=sp)[0].numpy(),
        },
    }
    if torchmetrics_hd and pred.ndim == 3:  # torchmetrics' distance transform is 2D only
        from torchmetrics.functional.segmentation import hausdorff_distance

        out["HD (max)"] = {
            "medseg": lambda: np.array([hd95(pred[i], target[i], spacing=spacing, percentile=100) for i in range(k)]),
            "torchmetrics": lambda: hausdorff_distance(p.long(), t.long(), num_classes=k, include_background=True,
                                                       spacing=sp)[0].numpy(),
        }
    return out


def compare(name: str, fns: dict[str, Callable[[], np.ndarray]], repeats: int) -> list[dict]:
    """Rows ``{metric, peer, max_diff, medseg_s, peer_s, ratio}``, one per peer library."""
    med, vals = _median_times(fns, repeats)
    rows = []
    for peer in fns:
        if peer == "medseg":
            continue
        diff = np.abs(vals["medseg"] - vals[peer])
        rows.append({"metric": name, "peer": peer, "max_diff": float(diff.max()),
                     "max_rel": float(np.max(diff / np.maximum(np.abs(vals[peer]), 1.0))),
                     "medseg_s": med["medseg"], "peer_s": med[peer], "ratio": med["medseg"] / med[peer]})
        print(f"  {name:12s} vs {peer:12s} max|diff| {rows[-1]['max_diff']:.2e}  medseg {med['medseg']:.3f}s  "
              f"{peer} {med[peer]:.3f}s  ratio {rows[-1]['ratio']:.2f}x", flush=True)
    return rows


def case_rows(pred, target, spacing, repeats: int, surface_repeats: int, torchmetrics_hd: bool) -> list[dict]:
    rows = compare("Dice + IoU", overlap_fns(pred, target), repeats)
    for name, fns in surface_fns(pred, target, spacing, torchmetrics_hd).items():
        rows += compare(name, fns, surface_repeats)
    return rows


def run(size: int = 2048, classes: int = 29, volume: tuple[int, int, int] = (240, 240, 155), repeats: int = 3,
        surface_repeats: int = 2, torchmetrics_hd: bool = False) -> str:
    """Both cases; returns the markdown section (also printed)."""
    torch.set_grad_enabled(False)
    cases = [(f"2D {classes}-class multi-label {size}x{size}", masks_2d(size, classes), (1.0, 1.0)),
             (f"3D BraTS 3 regions {'x'.join(map(str, volume))}, spacing 1x1x1.5 mm", masks_3d(volume), (1.0, 1.0, 1.5))]
    lines = [header("4. Metrics: medseg vs MONAI and torchmetrics (per case, CPU)"),
             ("Structured masks (ellipses/ellipsoids, prediction shifted and dilated or eroded). Time: median of "
              f"{repeats} (overlap) / {surface_repeats} (surface) interleaved calls; ratio = medseg / peer "
              "(< 1: medseg faster). medseg's Dice + IoU time includes all seven overlap metrics."), ""]
    worst = 0.0
    for title, (pred, target), spacing in cases:
        print(title, flush=True)
        rows = case_rows(pred, target, spacing, repeats, surface_repeats, torchmetrics_hd)
        lines += [f"**{title}**", "", "| metric | peer | max abs diff | max rel diff | medseg s | peer s | time ratio |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['metric']} | {r['peer']} | {r['max_diff']:.1e} | {r['max_rel']:.1e} | {r['medseg_s']:.3f} | "
                         f"{r['peer_s']:.3f} | {r['ratio']:.2f}x |")
            worst = max(worst, r["max_rel"])
        lines.append("")
    lines += [(f"**Largest relative difference in any value: {worst:.1e}** (difference / max(1, |peer value|); "
               "MONAI and torchmetrics return float32, medseg float64)."), ""]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=29)
    ap.add_argument("--volume", type=int, nargs=3, default=[240, 240, 155])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--surface-repeats", type=int, default=2)
    ap.add_argument("--torchmetrics-hd", action="store_true", help="also max HD against torchmetrics (slow)")
    a = ap.parse_args()
    run(a.size, a.classes, tuple(a.volume), a.repeats, a.surface_repeats, a.torchmetrics_hd)
