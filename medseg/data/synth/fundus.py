"""Synthetic colour fundus photographs with branching vessel trees (shared by DRIVE and CHASE_DB1).

The images are built so that a global threshold cannot solve them: a smooth illumination field
with an amplitude several times the vessel contrast, a bright optic disc, a dark fovea, dark
haemorrhage-like blobs that are not vessels, vessel contrast that varies per branch and fades with
width, a blur (the eye's point-spread function) and sensor noise. A model has to learn local,
shape-aware evidence, as on real fundus images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage


@dataclass
class FundusSample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    vessels: np.ndarray  # (H, W) uint8 0/1
    fov: np.ndarray  # (H, W) uint8 0/1


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Low-frequency random field in [-1, 1]."""
    small = rng.standard_normal((max(2, shape[0] // 64), max(2, shape[1] // 64)))
    field = ndimage.zoom(small, (shape[0] / small.shape[0], shape[1] / small.shape[1]), order=3)
    field = ndimage.gaussian_filter(field[: shape[0], : shape[1]], sigma=scale)
    field -= field.mean()
    return field / (np.abs(field).max() + 1e-8)


def _grow_tree(rng, start, angle, width, scale, fov_center, fov_radius, depth=0):
    """Yield polylines (points, width, contrast) of a branching random walk."""
    branches: list[tuple[list[tuple[float, ...]], float, float]] = []
    stack = [(np.array(start, float), angle, width, depth)]
    while stack and len(branches) < 400:
        pos, ang, w, d = stack.pop()
        pts = [tuple(pos)]
        contrast = rng.uniform(0.6, 1.0) * min(1.0, 0.5 + w / (6.0 * scale))
        steps = int(rng.integers(10, 26))
        for _ in range(steps):
            ang += rng.normal(0, 0.22)
            pos = pos + 9.0 * scale * np.array([np.cos(ang), np.sin(ang)])
            if np.hypot(*(pos - fov_center)) > fov_radius * 1.02:
                break
            pts.append(tuple(pos))
            w *= 0.985
            if w > 1.1 * scale and d < 8 and rng.random() < 0.13:
                side = rng.choice([-1, 1])
                stack.append((pos.copy(), ang + side * rng.uniform(0.4, 1.1), w * rng.uniform(0.55, 0.8), d + 1))
                w *= 0.9
        if len(pts) > 1:
            branches.append((pts, max(w, 0.8 * scale), contrast))
    return branches


def make_fundus(
    rng: np.random.Generator, height: int = 584, width: int = 565, fov_fraction: float = 0.93
) -> FundusSample:
    """Draw one synthetic fundus image with its vessel label and field-of-view mask."""
    scale = min(height, width) / 565.0
    ss = 2  # supersampling for anti-aliased vessel edges
    H, W = height * ss, width * ss
    yy, xx = np.mgrid[0:height, 0:width]
    center = np.array([width / 2, height / 2])
    radius = fov_fraction * min(height, width) / 2
    fov = (np.hypot(xx - center[0], yy - center[1]) <= radius).astype(np.uint8)

    # optic disc on one side, fovea on the other
    side = rng.choice([-1, 1])
    disc = center + np.array([side * radius * rng.uniform(0.45, 0.6), rng.uniform(-0.1, 0.1) * radius])
    fovea = center + np.array([-side * radius * rng.uniform(0.1, 0.25), rng.uniform(-0.08, 0.08) * radius])

    label_canvas = Image.new("L", (W, H), 0)
    dark_canvas = Image.new("L", (W, H), 0)
    ld, dd = ImageDraw.Draw(label_canvas), ImageDraw.Draw(dark_canvas)
    base_angle = np.pi if side > 0 else 0.0
    for arc in (-1, 1):
        for spread in (0.35, 0.8, 1.3):
            ang = base_angle + arc * spread * rng.uniform(0.6, 1.1)
            branches = _grow_tree(rng, disc, ang, rng.uniform(5.5, 8.0) * scale, scale, center, radius)
            for pts, w, contrast in branches:
                spts = [(x * ss, y * ss) for x, y in pts]
                wpx = max(1, int(round(w * ss)))
                ld.line(spts, fill=255, width=wpx, joint="curve")
                dd.line(spts, fill=int(255 * contrast), width=wpx, joint="curve")

    label_hr = np.asarray(label_canvas, dtype=np.float32) / 255.0
    vessels = (label_hr.reshape(height, ss, width, ss).mean(axis=(1, 3)) >= 0.5).astype(np.uint8)
    darkness = np.asarray(dark_canvas, dtype=np.float32).reshape(height, ss, width, ss).mean(axis=(1, 3)) / 255.0
    darkness = ndimage.gaussian_filter(darkness, sigma=0.7 * scale + 0.3)
    vessels &= fov

    # background: orange fundus, strong smooth illumination changes, vignetting, disc and fovea
    illum = 0.22 * _smooth_field(rng, (height, width), 8 * scale)
    gx = rng.uniform(-0.18, 0.18) * (xx - center[0]) / radius
    gy = rng.uniform(-0.12, 0.12) * (yy - center[1]) / radius
    r_norm = np.hypot(xx - center[0], yy - center[1]) / radius
    vignette = -0.22 * np.clip(r_norm, 0, 1) ** 3
    disc_r = 0.16 * radius
    disc_glow = 0.45 * np.exp(-(((xx - disc[0]) ** 2 + (yy - disc[1]) ** 2) / (2 * disc_r**2)))
    fovea_dark = -0.12 * np.exp(-(((xx - fovea[0]) ** 2 + (yy - fovea[1]) ** 2) / (2 * (0.2 * radius) ** 2)))
    shading = illum + gx + gy + vignette + disc_glow + fovea_dark

    # dark blobs (haemorrhage-like) that are not vessels
    blobs = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(3, 9))):
        by, bx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        br = rng.uniform(2.5, 7.0) * scale
        blobs += rng.uniform(0.06, 0.16) * np.exp(-(((xx - bx) ** 2 + (yy - by) ** 2) / (2 * br**2)))

    vessel_contrast = rng.uniform(0.13, 0.2)
    green = 0.42 + 0.5 * shading - vessel_contrast * darkness - blobs
    red = 0.78 + 0.35 * shading - 0.35 * vessel_contrast * darkness - 0.5 * blobs
    blue = 0.12 + 0.15 * shading - 0.15 * vessel_contrast * darkness
    rgb = np.stack([red, green, blue], axis=-1)
    rgb = ndimage.gaussian_filter(rgb, sigma=(0.6 * scale, 0.6 * scale, 0))
    rgb += rng.normal(0, 0.018, rgb.shape)
    rgb = np.clip(rgb, 0, 1) * fov[..., None]
    image = (rgb * 255 + 0.5).astype(np.uint8)
    return FundusSample(image=image, vessels=vessels, fov=fov)
