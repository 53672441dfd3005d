"""Write a synthetic hand-bone X-ray set in the exact distributed layout
(see :mod:`medseg.data.formats.handbone`).

Each radiograph shows one hand: radius and ulna, eight carpal bones, five metacarpals and the
phalanges (3 for the thumb, 4 per finger: 19 ``finger-*`` classes) as capsule-shaped polygons that
overlap at the joints, inside a soft-tissue silhouette. X-ray attenuation adds up, so overlaps are
brighter; bones have a bright cortical rim; there is an illumination gradient, blur, noise and a
bright side marker that is not bone. Which bone a pixel belongs to depends on its place in the
hand, not on its brightness: a model has to learn the anatomy.

Finger numbering (an assumption about the release, documented in docs/datasets.md): thumb tip to
base is finger-1..3, then index, middle, ring and little finger tip to metacarpal (4..7, 8..11,
12..15, 16..19).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from medseg.data.formats.handbone import CLASSES, rasterize
from medseg.utils.io import write_image, write_json_atomic

MARKER = ".medseg_synthetic.json"


@dataclass
class HandSample:
    image: np.ndarray  # (H, W) uint8
    polygons: dict[str, list]  # class -> [[[x, y], ...]] in pixels


def _capsule(p0, p1, width, n=10) -> np.ndarray:
    """Polygon of a rounded bar from ``p0`` to ``p1`` (normalised coordinates)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    ang = np.arctan2(d[1], d[0])
    r = width / 2
    a1 = np.linspace(ang + np.pi / 2, ang + 3 * np.pi / 2, n)
    a2 = np.linspace(ang - np.pi / 2, ang + np.pi / 2, n)
    cap0 = p0 + r * np.stack([np.cos(a1), np.sin(a1)], 1)
    cap1 = p1 + r * np.stack([np.cos(a2), np.sin(a2)], 1)
    return np.concatenate([cap0, cap1])


def _ellipse(c, rx, ry, angle=0.0, n=16) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([c[0] + ca * x - sa * y, c[1] + sa * x + ca * y], 1)


def _hand_geometry(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Bone polygons of a left hand, fingers up, in normalised [0, 1] coordinates."""
    j = lambda s=0.01: rng.normal(0, s)
    bones: dict[str, np.ndarray] = {}
    bones["Radius"] = _capsule((0.43 + j(), 1.05), (0.46 + j(), 0.745), 0.10 + j(0.005))
    bones["Ulna"] = _capsule((0.60 + j(), 1.05), (0.575 + j(), 0.765), 0.06 + j(0.004))
    carpals = {  # centre, radii (proximal row, then distal row)
        "Scaphoid": ((0.445, 0.70), (0.035, 0.022), -0.5),
        "Lunate": ((0.505, 0.705), (0.027, 0.022), 0.0),
        "Triquetrum": ((0.555, 0.69), (0.024, 0.02), 0.3),
        "Pisiform": ((0.575, 0.705), (0.016, 0.015), 0.0),
        "Trapezium": ((0.415, 0.645), (0.027, 0.022), -0.3),
        "Trapezoid": ((0.465, 0.64), (0.02, 0.02), 0.0),
        "Capitate": ((0.51, 0.645), (0.024, 0.035), 0.0),
        "Hamate": ((0.56, 0.645), (0.025, 0.03), 0.2),
    }
    for name, (c, (rx, ry), a) in carpals.items():
        bones[name] = _ellipse((c[0] + j(0.004), c[1] + j(0.004)), rx * (1 + j(0.05)), ry * (1 + j(0.05)), a)
    # rays: (base point, angle from vertical, bone lengths base->tip, width); thumb has 3 bones
    rays = [
        ((0.42, 0.62), -0.75, (0.11, 0.075, 0.055), 0.036),  # thumb: metacarpal, proximal, distal
        ((0.465, 0.605), -0.12, (0.15, 0.09, 0.055, 0.04), 0.03),  # index
        ((0.51, 0.60), 0.0, (0.145, 0.10, 0.065, 0.042), 0.031),  # middle
        ((0.55, 0.605), 0.12, (0.135, 0.092, 0.06, 0.04), 0.029),  # ring
        ((0.585, 0.62), 0.28, (0.12, 0.075, 0.045, 0.036), 0.026),  # little
    ]
    number = 1
    for base, ang, lengths, width in rays:
        ang += j(0.06)
        pos = np.array(base) + np.array([j(0.004), j(0.004)])
        segs = []
        for k, length in enumerate(lengths):
            length *= 1 + j(0.04)
            end = pos + length * np.array([np.sin(ang), -np.cos(ang)])
            w = width * (1 - 0.12 * k)
            segs.append(_capsule(pos, end, w))
            pos = end + 0.004 * np.array([np.sin(ang), -np.cos(ang)])  # joint gap; capsules still overlap
            ang += j(0.05)
        for poly in reversed(segs):  # tip first: finger-1 is the thumb's distal phalanx
            bones[f"finger-{number}"] = poly
            number += 1
    return bones


def make_hand(rng: np.random.Generator, size: int = 2048, side: str = "L") -> HandSample:
    """One radiograph of a ``side`` ("L" or "R") hand, ``size`` x ``size`` pixels."""
    bones = _hand_geometry(rng)
    # random pose: rotation, scale, shift around the image centre; right hands are mirrored
    theta, scale = rng.uniform(-0.25, 0.25), rng.uniform(0.85, 1.05)
    shift = rng.uniform(-0.04, 0.04, 2)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])

    def place(p):
        q = (p - 0.5) @ rot.T * scale + 0.5 + shift
        if side == "R":
            q[:, 0] = 1 - q[:, 0]
        return q * size

    polys = {name: place(p) for name, p in bones.items()}
    ss = 2  # supersampling for anti-aliased edges

    def paint(shapes) -> np.ndarray:
        """Anti-aliased coverage in [0, 1] of the union of ``shapes``, drawn in their bounding box."""
        pts = np.concatenate(shapes)
        x0, y0 = np.clip(np.floor(pts.min(0)).astype(int) - 2, 0, size)
        x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int) + 2, 0, size)
        full = np.zeros((size, size), np.float32)
        if x1 <= x0 or y1 <= y0:
            return full
        im = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
        d = ImageDraw.Draw(im)
        for p in shapes:
            d.polygon([tuple(v) for v in (p - [x0, y0]) * ss], fill=255)
        a = np.asarray(im, np.float32) / 255.0
        full[y0:y1, x0:x1] = a.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
        return full

    # soft tissue: the bones dilated into a hand silhouette
    tissue = paint(list(polys.values()))
    tissue = ndimage.gaussian_filter(ndimage.grey_dilation(tissue, size=max(3, size // 28)), size / 200)
    attenuation = 0.28 * np.clip(tissue * 1.5, 0, 1)
    for name, p in polys.items():
        b = paint([p])
        if not b.any():
            continue
        rows, cols = np.nonzero(b.any(1))[0], np.nonzero(b.any(0))[0]
        box = (slice(max(rows[0] - 2, 0), rows[-1] + 3), slice(max(cols[0] - 2, 0), cols[-1] + 3))
        rim = np.zeros_like(b)
        rim[box] = b[box] - ndimage.grey_erosion(b[box], size=max(2, size // 150))
        density = rng.uniform(0.22, 0.3) * (1.2 if name in ("Radius", "Ulna") else 1.0)
        attenuation += density * b + 0.12 * rim
    yy, xx = np.mgrid[0:size, 0:size] / size
    gradient = rng.uniform(-0.08, 0.08) * (xx - 0.5) + rng.uniform(-0.08, 0.08) * (yy - 0.5)
    img = 0.06 + attenuation + gradient
    # a bright side marker ("L"/"R" lead letter) in a corner: bright like bone, but no class
    m0 = (rng.uniform(0.05, 0.15) * size, rng.uniform(0.05, 0.12) * size)
    ms = 0.05 * size
    img[int(m0[1]):int(m0[1] + ms), int(m0[0]):int(m0[0] + ms * 0.6)] += 0.55
    img = ndimage.gaussian_filter(img, 0.6 * size / 512 + 0.3)
    img += rng.normal(0, 0.025, img.shape)
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
    image = (img * 255 + 0.5).astype(np.uint8)
    polygons = {name: [np.round(np.clip(p, 0, size)).astype(int).tolist()] for name, p in polys.items()}
    return HandSample(image=image, polygons=polygons)


def write_handbone(
    out: str | Path,
    n_train: int = 10,
    n_test: int = 2,
    size: int = 2048,
    seed: int = 0,
) -> Path:
    """Write ``n_train`` training IDs (with JSON) and ``n_test`` test IDs (images only), two
    radiographs (left, right hand) per ID, as ``{train,test}/DCM/IDnnn/image<stamp>_<L|R>.png`` and
    ``train/outputs_json/IDnnn/image<stamp>_<L|R>.json``.

    Image ``k`` (0-based over IDs then hands) is ``make_hand(np.random.default_rng((seed, k)), size,
    side)``. Returns ``out``.
    """
    out = Path(out)
    k = 0
    for split, n, first in (("train", n_train, 1), ("test", n_test, n_train + 1)):
        for i in range(n):
            pid = f"ID{first + i:03d}"
            for side in ("L", "R"):
                sample = make_hand(np.random.default_rng((seed, k)), size, side)
                stem = f"image{1661130828000 + 1000 * k + seed % 1000}_{side}"
                write_image(out / split / "DCM" / pid / f"{stem}.png", sample.image, "PNG")
                if split == "train":
                    doc = {"filename": f"{stem}.png",
                           "annotations": [{"id": f"{pid}-{j}", "type": "poly_seg", "label": name,
                                            "points": pts} for j, name in enumerate(CLASSES)
                                           for pts in sample.polygons[name]]}
                    write_json_atomic(out / split / "outputs_json" / pid / f"{stem}.json", doc)
                k += 1
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.handbone", "seed": seed,
                                     "n_train": n_train, "n_test": n_test, "size": size})
    return out


__all__ = ["HandSample", "make_hand", "rasterize", "write_handbone"]
