"""A dataset fingerprint (nnU-Net's "dataset fingerprint", for every medseg layout and task): what the
planning rules in :mod:`medseg.plan.rules` read. Computed on the training pool only (never the test
split), through the datamodule's public API."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from medseg.errors import DataError
from medseg.inference.postprocess import component_sizes

#: raw cases read for intensity statistics, and masks analysed for object shape (enough for medians)
MAX_INTENSITY_CASES = 20
MAX_SHAPE_CASES = 10
PERCENTILES = (0.5, 5, 50, 95, 99.5)


def _fg(task: str, mask: np.ndarray, n_classes: int) -> np.ndarray:
    """Boolean ``(K, *spatial)`` per foreground class."""
    if task == "multilabel":
        return mask.astype(bool)
    if task == "binary":
        return (mask > 0)[None]
    return np.stack([mask == k for k in range(1, n_classes + 1)])


def modality_guess(channels: int, spatial_dims: int, p_low: float, p_high: float) -> str:
    """From channel count, dimensionality and the raw intensity range (0.5th / 99.5th percentile)."""
    if spatial_dims == 3:
        if channels == 1 and p_low < -200 and p_high > 200:
            return "CT-like (Hounsfield range)"
        return "MR-like" + (" (multi-sequence)" if channels > 1 else "")
    if channels == 3:
        return "colour photograph (e.g. fundus RGB)"
    return "grey radiograph (X-ray-like)"


def fingerprint(dm, pool: Sequence[str] = ("train", "val")) -> dict:
    """Fingerprint of the datamodule's training pool (``dm`` after ``prepare_data()`` and ``setup()``).

    Raises :class:`DataError` (naming what was found) for a single case, mixed channel counts or
    masks that are all empty."""
    cases = [c for split in pool for c in dm.cases.get(split, [])]
    root = getattr(dm, "root", "?")
    if len(cases) < 2:
        raise DataError(f"{root}: found {len(cases)} labelled training case(s); a plan needs at least 2 "
                        "(it estimates sizes, class balance and a validation split from them)")
    channels = {c.case_id: int(c.image.shape[0]) for c in cases}
    raw_channels = {}
    for c in cases[:MAX_INTENSITY_CASES]:
        raw_channels[c.case_id] = int(dm.raw_case(c.case_id).image.shape[0])
    if len(set(raw_channels.values())) > 1 or len(set(channels.values())) > 1:
        counts: dict[int, list[str]] = {}
        for cid, n in (raw_channels or channels).items():
            counts.setdefault(n, []).append(cid)
        shown = "; ".join(f"{n} channel(s): {len(ids)} case(s), e.g. {ids[0]}" for n, ids in sorted(counts.items()))
        raise DataError(f"{root}: images have mixed channel counts ({shown}); convert them to one layout first")
    task, names = dm.task, list(dm.class_names)
    k = len(names)
    spatial_dims = len(cases[0].spatial_shape)
    shapes = np.array([c.spatial_shape for c in cases])
    spacings = np.array([c.spacing for c in cases if c.spacing is not None]) if spatial_dims == 3 else np.zeros((0,))

    fg_frac = np.zeros((len(cases), k))
    overlap = []
    for i, c in enumerate(cases):
        fg = _fg(task, np.asarray(c.mask), k)
        region = c.roi if c.roi is not None else np.ones(c.spatial_shape, bool)
        n = max(int(region.sum()), 1)
        fg_frac[i] = (fg & region).reshape(k, -1).sum(1) / n
        if task == "multilabel":
            any_fg = fg.any(0)
            overlap.append(float((fg.sum(0) > 1)[any_fg].mean()) if any_fg.any() else 0.0)
    if not (fg_frac > 0).any():
        raise DataError(f"{root}: all {len(cases)} training masks are empty (no foreground of {names}); "
                        "check data.reader (mask folder, mask_values, task) or the mask files")

    # raw intensities (before preprocessing), inside the ROI where the layout has one
    per_channel = []
    raws = [dm.raw_case(c.case_id) for c in cases[:MAX_INTENSITY_CASES]]
    n_ch = int(raws[0].image.shape[0])
    rng = np.random.default_rng(0)
    for ch in range(n_ch):
        vals = []
        for r in raws:
            v = r.image[ch][r.roi] if r.roi is not None else r.image[ch].ravel()
            vals.append(v if v.size <= 200_000 else rng.choice(v, 200_000, replace=False))
        v = np.concatenate(vals).astype(np.float64)
        per_channel.append({"mean": float(v.mean()), "std": float(v.std()),
                            **{f"p{q:g}": float(np.percentile(v, q)) for q in PERCENTILES}})
    # the same over the foreground (voxels of any class): nnU-Net's "foreground intensity properties",
    # the clip range and z-score statistics of its CT normalisation
    fg_channel = []
    fg_masks = [_fg(task, np.asarray(r.mask), k).any(0) if r.mask is not None else None for r in raws]
    for ch in range(n_ch):
        vals = [r.image[ch][m] for r, m in zip(raws, fg_masks) if m is not None and m.any()]
        vals = [v if v.size <= 200_000 else rng.choice(v, 200_000, replace=False) for v in vals]
        if vals:
            v = np.concatenate(vals).astype(np.float64)
            fg_channel.append({"mean": float(v.mean()), "std": float(v.std()),
                               **{f"p{q:g}": float(np.percentile(v, q)) for q in PERCENTILES}})

    # object size and thinness per class
    objects = []
    for j, name in enumerate(names):
        sizes, widths = [], []
        for c in cases[:MAX_SHAPE_CASES]:
            m = _fg(task, np.asarray(c.mask), k)[j]
            if not m.any():
                continue
            sizes.extend(component_sizes(m).tolist())
            # local width = twice the distance to the background on the medial axis (skeleton), on the
            # mask's bounding box padded by one background pixel: the same distances and skeleton, and a
            # 29-bone 2048^2 hand costs boxes, not 29 full images
            m = m[tuple(slice(max(int(a.min()) - 1, 0), int(a.max()) + 2) for a in np.nonzero(m))]
            m = np.pad(m, 1)
            skel = skeletonize(m)
            widths.append(float(np.median(ndimage.distance_transform_edt(m)[skel if skel.any() else m])) * 2)
        width = float(np.median(widths)) if widths else float("nan")
        objects.append({"class": name, "components_per_case": len(sizes) / max(1, min(len(cases), MAX_SHAPE_CASES)),
                        "median_component_px": float(np.median(sizes)) if sizes else 0.0,
                        "median_width_px": width,
                        "shape": "thin (vessel-like)" if width < 6 else "compact (blob-like)"})

    fp = {
        "root": str(root), "task": task, "classes": names, "cases": len(cases), "spatial_dims": spatial_dims,
        "channels": n_ch,
        "size": {"min": shapes.min(0).tolist(), "median": np.median(shapes, 0).tolist(), "max": shapes.max(0).tolist()},
        "has_roi": any(c.roi is not None for c in cases),
        "intensity": per_channel,
        "intensity_foreground": fg_channel,
        "class_frequency": {n: float(fg_frac[:, j].mean()) for j, n in enumerate(names)},
        "class_frequency_per_case": {n: {"min": float(fg_frac[:, j].min()), "median": float(np.median(fg_frac[:, j])),
                                         "max": float(fg_frac[:, j].max())} for j, n in enumerate(names)},
        "empty_mask_share": {n: float((fg_frac[:, j] == 0).mean()) for j, n in enumerate(names)},
        "objects": objects,
        "modality": modality_guess(n_ch, spatial_dims, per_channel[0]["p0.5"], per_channel[0]["p99.5"]),
    }
    if task == "multilabel":
        fp["multilabel_overlap"] = float(np.mean(overlap))
    if spatial_dims == 3 and len(spacings):
        med = np.median(spacings, 0)
        fp["spacing"] = {"median": med.tolist(), "min": spacings.min(0).tolist(), "max": spacings.max(0).tolist(),
                         "p10": np.percentile(spacings, 10, axis=0).tolist()}
        fp["anisotropy"] = float(med.max() / med.min())
    return fp


def summary_lines(fp: dict) -> list[str]:
    """The terminal summary of a fingerprint."""
    lines = [f"{fp['cases']} training cases ({fp['task']}, classes {fp['classes']}), {fp['spatial_dims']}D, "
             f"{fp['channels']} channel(s); modality guess: {fp['modality']}",
             f"  size min/median/max: {fp['size']['min']} / {fp['size']['median']} / {fp['size']['max']}"]
    for ch, s in enumerate(fp["intensity"]):
        lines.append(f"  channel {ch}{' (inside ROI)' if fp['has_roi'] else ''}: p0.5 {s['p0.5']:.4g}, "
                     f"median {s['p50']:.4g}, p99.5 {s['p99.5']:.4g}, mean {s['mean']:.4g} +- {s['std']:.4g}")
    if "spacing" in fp:
        lines.append(f"  spacing median {fp['spacing']['median']} (anisotropy {fp['anisotropy']:.2f})")
    for o in fp["objects"]:
        n = o["class"]
        lines.append(f"  {n}: {100 * fp['class_frequency'][n]:.2f}% of pixels, empty in "
                     f"{100 * fp['empty_mask_share'][n]:.0f}% of cases, {o['components_per_case']:.1f} components/case "
                     f"(median {o['median_component_px']:.0f} px), width ~{o['median_width_px']:.1f} px: {o['shape']}")
    if "multilabel_overlap" in fp:
        lines.append(f"  multi-label overlap: {100 * fp['multilabel_overlap']:.1f}% of foreground pixels carry >1 class")
    return lines
