"""Write synthetic chest radiographs in the JSRT/SCR layouts (see :mod:`medseg.data.formats.jsrt`).

A PA chest film: a torso with soft tissue, two dark lung fields of varying shape and size (the
left one notched by the heart), a bright mediastinum and heart, the diaphragm, clavicles and
posterior ribs that cross the lungs as bright curved bands, a smooth exposure gradient and noise.
Ribs and the gradient change the lung intensity more than the lung/tissue contrast in places, so
a threshold does not recover the lung fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from medseg.utils.io import save_with, write_image, write_json_atomic

MARKER = ".medseg_synthetic.json"


@dataclass
class ChestSample:
    image: np.ndarray  # (H, W) float32 in [0, 1], display convention (air dark)
    right_lung: np.ndarray  # (H, W) uint8 0/1 (patient's right = image left)
    left_lung: np.ndarray


def _lung_polygon(rng, side: int, heart: bool) -> np.ndarray:
    """Outline of one lung in normalised coordinates (x to the image right)."""
    cx = 0.5 + side * rng.uniform(0.17, 0.21)
    top, bottom = rng.uniform(0.13, 0.19), rng.uniform(0.74, 0.84)
    half_w = rng.uniform(0.13, 0.16)
    t = np.linspace(0, 1, 24)
    # lateral edge: a convex arc from apex to costophrenic angle
    lat_x = cx + side * half_w * (np.sin(np.pi * t / 2) ** 0.6 - 0.1 * t**4)
    lat_y = top + (bottom - top) * t
    # medial edge: straight-ish, bowed out by the heart on the patient's left; the diaphragm's
    # dome lifts its lower end above the costophrenic angle
    dome = rng.uniform(0.05, 0.1)
    med_y = (top + (bottom - dome - top) * t)[::-1]
    bow = (0.06 if heart else 0.02) * np.sin(np.pi * np.clip((med_y - 0.45) / 0.4, 0, 1))
    med_x = cx - side * (half_w * 0.55 - 0.02 * (1 - (med_y - top) / (bottom - top))) + side * bow
    apex = np.stack([cx + side * half_w * 0.2 * np.cos(np.linspace(np.pi, 0, 8)),
                     top - 0.02 * np.sin(np.linspace(np.pi, 0, 8))], 1)
    return np.concatenate([apex, np.stack([lat_x, lat_y], 1), np.stack([med_x, med_y], 1)])


def make_chest(rng: np.random.Generator, size: int = 2048) -> ChestSample:
    """One synthetic PA chest radiograph of ``size`` x ``size`` pixels with its two lung masks."""
    ss = 2
    S = size * ss

    def draw(polys, width=0) -> np.ndarray:
        im = Image.new("L", (S, S), 0)
        d = ImageDraw.Draw(im)
        for p in polys:
            pts = [tuple(v) for v in np.asarray(p) * S]
            if width:
                d.line(pts, fill=255, width=max(1, int(width * S)), joint="curve")
            else:
                d.polygon(pts, fill=255)
        return np.asarray(im, np.float32).reshape(size, ss, size, ss).mean(axis=(1, 3)) / 255.0

    lungs = [_lung_polygon(rng, -1, heart=False), _lung_polygon(rng, +1, heart=True)]
    right, left = (draw([lungs[0]]) >= 0.5).astype(np.uint8), (draw([lungs[1]]) >= 0.5).astype(np.uint8)
    lung_soft = ndimage.gaussian_filter(draw(lungs), size / 300)

    yy, xx = np.mgrid[0:size, 0:size] / size
    torso = np.clip(1 - ((xx - 0.5) / 0.46) ** 2 - ((yy - 0.55) / 0.62) ** 4, 0, 1) ** 0.3
    heart_c = (0.5 + rng.uniform(0.03, 0.07), rng.uniform(0.58, 0.64))
    heart = np.exp(-(((xx - heart_c[0]) / 0.11) ** 2 + ((yy - heart_c[1]) / 0.12) ** 2))
    mediastinum = np.exp(-(((xx - 0.5) / 0.05) ** 2)) * (yy < 0.7)
    diaphragm = 1 / (1 + np.exp(-(yy - rng.uniform(0.8, 0.86)) * 60))

    ribs = []
    for i in range(10):  # posterior ribs: arcs from the spine outwards and down
        y0 = 0.14 + 0.065 * i + rng.normal(0, 0.005)
        for side in (-1, 1):
            x = np.linspace(0.5 + side * 0.03, 0.5 + side * 0.42, 20)
            u = np.abs(x - 0.5) / 0.42
            y = y0 - 0.05 * np.sin(np.pi * u * 0.8) + 0.1 * u**2
            ribs.append(np.stack([x, y], 1))
    rib_layer = draw(ribs, width=0.018)
    clavicles = draw([np.array([[0.5 + s * 0.05, 0.17], [0.5 + s * 0.25, 0.12], [0.5 + s * 0.35, 0.14]])
                      for s in (-1, 1)], width=0.022)

    exposure = rng.uniform(-0.2, 0.2) * (xx - 0.5) + rng.uniform(-0.15, 0.15) * (yy - 0.5)
    vessels = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 128)
    vessels = 0.05 * vessels / (np.abs(vessels).max() + 1e-8)  # lung markings
    density = (0.35 * torso + 0.25 * heart + 0.25 * mediastinum + 0.3 * diaphragm * torso
               - 0.2 * lung_soft * (1 - 0.6 * heart) + lung_soft * vessels
               + 0.2 * rib_layer * torso + 0.25 * clavicles)
    img = 0.1 + density + exposure
    img = ndimage.gaussian_filter(img, size / 1024 + 0.3) + rng.normal(0, 0.02, (size, size))
    img = np.clip(img, 0, 1).astype(np.float32)
    return ChestSample(image=img, right_lung=right, left_lung=left)


def write_jsrt(
    out: str | Path,
    n: int = 20,
    size: int = 2048,
    layout: str = "scr",
    seed: int = 0,
    mask_size: int | None = None,
) -> Path:
    """Write ``n`` synthetic radiographs ``JPCLN001..`` in ``layout``:

    * ``scr``: ``All247images/JPCLNnnn.IMG`` (raw big-endian uint16, 12-bit optical density, ``size``
      square) + ``scratch/fold{1,2}/masks/{left,right} lung/JPCLNnnn.gif`` (0/255 at ``mask_size``,
      default ``size // 2`` as SCR; odd cases in fold1, even in fold2).
    * ``png``: ``org/JPCLNnnn.png`` + ``label/JPCLNnnn.png`` (8-bit, lungs 255) at ``size``.
    * ``folder``: ``images/`` + ``masks/`` PNGs, masks at ``mask_size`` (default ``size``).

    Case ``i`` is ``make_chest(np.random.default_rng((seed, i)), size)``; masks are the sample's
    downsampled with nearest neighbour where ``mask_size`` differs. Returns ``out``.
    """
    from medseg.data.preprocess import resize_nearest

    out = Path(out)
    if layout not in ("scr", "png", "folder"):
        raise ValueError(f"layout must be scr, png or folder, got {layout!r}")
    msize = mask_size or (size // 2 if layout == "scr" else size)
    for i in range(n):
        s = make_chest(np.random.default_rng((seed, i)), size)
        stem = f"JPCLN{i + 1:03d}"
        masks = {name: resize_nearest(m, (msize, msize)) * np.uint8(255)
                 for name, m in (("right lung", s.right_lung), ("left lung", s.left_lung))}
        if layout == "scr":
            raw = np.round((1.0 - s.image) * 4095).astype(">u2")
            save_with(out / "All247images" / f"{stem}.IMG", partial(Path.write_bytes, data=raw.tobytes()))
            fold = "fold1" if i % 2 == 0 else "fold2"
            for name, m in masks.items():
                write_image(out / "scratch" / fold / "masks" / name / f"{stem}.gif", m, "GIF")
        else:
            img_dir, mask_dir = ("org", "label") if layout == "png" else ("images", "masks")
            union = np.maximum(masks["right lung"], masks["left lung"])
            img8 = (s.image * 255 + 0.5).astype(np.uint8)
            write_image(out / img_dir / f"{stem}.png", img8, "PNG")
            write_image(out / mask_dir / f"{stem}.png", union, "PNG")
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.jsrt", "seed": seed, "n": n, "size": size,
                                     "layout": layout, "mask_size": msize})
    return out
