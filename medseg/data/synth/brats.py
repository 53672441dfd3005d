"""Write a synthetic dataset in the exact BraTS layout of a given year (default 2020) (see :mod:`medseg.data.formats.brats`).

Each case is a skull-stripped, head-like MRI: an irregular ellipsoidal brain (zero background)
with cortex, white matter and ventricles, four modalities whose tissue contrasts differ as on real
scans (CSF dark on T1/FLAIR and bright on T2, oedema bright on FLAIR/T2, enhancing rim bright on
T1ce only), a smooth bias field, noise, and small FLAIR hyperintensities that are *not* tumour.
The tumour is nested like a glioma: oedema (2) around a core whose rim enhances (4) around a
necrotic centre (1), so whole tumour ⊃ tumour core ⊃ enhancing tumour. No single modality
threshold recovers the three regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.data.formats.nifti import write_nifti
from medseg.utils.io import write_json_atomic

MARKER = ".medseg_synthetic.json"
TRAIN_DIR, VAL_DIR = "MICCAI_BraTS2020_TrainingData", "MICCAI_BraTS2020_ValidationData"


def brats_affine(shape: Sequence[int] = (240, 240, 155)) -> np.ndarray:
    """The voxel-to-world affine of BraTS volumes (SRI24, 1 mm, i and j axes flipped):
    ``diag(-1, -1, 1)`` with the j origin at ``shape[1] - 1`` (239 for the real 240 voxels)."""
    aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    aff[1, 3] = float(shape[1] - 1)
    return aff


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cells: int = 4) -> np.ndarray:
    """Low-frequency random field in about [-1, 1]."""
    small = rng.standard_normal([cells] * len(shape))
    field = ndimage.zoom(small, [s / cells for s in shape], order=1)
    field = field[tuple(slice(0, s) for s in shape)]
    return field / (np.abs(field).max() + 1e-8)


def _blob(shape, center, radii, rng, roughness=0.25) -> np.ndarray:
    """Irregular ellipsoid: normalised distance perturbed by a smooth random field, computed in
    the ellipsoid's bounding box only (volumes are large)."""
    center, radii = np.asarray(center, float), np.asarray(radii, float)
    reach = radii * (1 + roughness) + 1
    lo = [max(int(np.floor(c - r)), 0) for c, r in zip(center, reach)]
    hi = [min(int(np.ceil(c + r)) + 1, s) for c, r, s in zip(center, reach, shape)]
    out = np.zeros(shape, bool)
    if any(h <= a for a, h in zip(lo, hi)):
        return out
    grid = np.ogrid[tuple(slice(a, h) for a, h in zip(lo, hi))]
    d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)))
    out[tuple(slice(a, h) for a, h in zip(lo, hi))] = d + roughness * _smooth_noise(rng, d.shape, cells=3) < 1.0
    return out


def make_head(
    rng: np.random.Generator,
    shape: Sequence[int] = (240, 240, 155),
    tumour_center: Sequence[int] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One case -> ``({modality: float32 volume}, seg uint8 {0,1,2,4}, brain bool)``.

    ``tumour_center`` is (i, j, k) in array indices; it must lie inside the brain. ``None`` picks
    a random point well inside the brain.
    """
    shape = tuple(int(s) for s in shape)
    c = np.array(shape, float) / 2 + rng.uniform(-0.03, 0.03, 3) * np.array(shape)
    radii = np.array(shape, float) * np.array([0.30, 0.37, 0.40]) * rng.uniform(0.92, 1.05, 3)
    brain = _blob(shape, c, radii, rng, roughness=0.06)
    depth = ndimage.distance_transform_edt(brain)  # distance to the brain's surface, in voxels
    # cortex = the outer shell of the brain, ventricles = two small ellipsoids near the centre
    inner = depth > max(1, int(round(min(shape) * 0.04)))
    cortex = brain & ~inner
    vent = np.zeros(shape, bool)
    for side in (-1, 1):
        vc = c + np.array([side * 0.07, 0.02, 0.05]) * np.array(shape)
        vent |= _blob(shape, vc, np.array(shape) * np.array([0.035, 0.12, 0.06]), rng, roughness=0.1)
    vent &= inner

    # tumour: oedema ⊃ core; the core's rim enhances, its centre is necrotic
    scale = min(shape) / 155.0
    if tumour_center is None:
        candidates = np.argwhere(depth > max(1, int(round(30 * scale))))
        if not len(candidates):
            candidates = np.argwhere(brain)
        tc = candidates[rng.integers(len(candidates))].astype(float)
    else:
        tc = np.asarray(tumour_center, float)
        if tc.shape != (3,):
            raise ValueError(f"tumour_center must be 3 voxel indices (i, j, k), got {tumour_center}")
        idx = tuple(int(round(v)) for v in tc)
        if not all(0 <= v < s for v, s in zip(idx, shape)) or not brain[idx]:
            raise ValueError(f"tumour_center {idx} is outside the synthetic brain")
    r_core = rng.uniform(9, 16, 3) * scale
    core = _blob(shape, tc, r_core, rng, roughness=0.2)
    oedema = _blob(shape, tc + rng.normal(0, 2 * scale, 3), r_core * rng.uniform(1.5, 2.1), rng, roughness=0.3)
    oedema |= ndimage.binary_dilation(core, iterations=1)
    necrosis = ndimage.binary_erosion(core, iterations=max(1, int(round(2.5 * scale))))
    oedema &= brain
    core &= brain
    necrosis &= core
    seg = np.zeros(shape, np.uint8)
    seg[oedema] = 2
    seg[core] = 4
    seg[necrosis] = 1

    # non-tumour FLAIR hyperintensities (small vessel disease look-alikes)
    wmh = np.zeros(shape, bool)
    wm = inner & ~vent & ~oedema
    pts = np.argwhere(wm)
    for _ in range(int(rng.integers(2, 5))):
        if not len(pts):
            break
        p = pts[rng.integers(len(pts))]
        wmh |= _blob(shape, p, rng.uniform(1.5, 3.5, 3) * scale, rng, roughness=0.1)
    wmh &= wm

    # tissue intensities per modality: (wm, gm, csf, oedema, necrosis, enhancing, wmh)
    table = {
        "t1": (0.80, 0.60, 0.20, 0.52, 0.30, 0.58, 0.78),
        "t1ce": (0.80, 0.62, 0.20, 0.52, 0.28, 1.25, 0.78),
        "t2": (0.35, 0.50, 1.00, 0.80, 0.95, 0.65, 0.55),
        "flair": (0.40, 0.52, 0.10, 0.95, 0.60, 0.80, 0.85),
    }
    volumes = {}
    for mod, (wm_v, gm_v, csf_v, ed_v, nec_v, en_v, wmh_v) in table.items():
        v = np.full(shape, wm_v, np.float32)
        v[cortex] = gm_v
        v[vent] = csf_v
        v[wmh] = wmh_v
        v[seg == 2] = ed_v
        v[seg == 4] = en_v
        v[seg == 1] = nec_v
        v = ndimage.gaussian_filter(v, 0.8)
        bias = 1.0 + 0.2 * _smooth_noise(rng, shape, cells=3)
        v = v * bias + rng.normal(0, 0.04, shape).astype(np.float32)
        scale_mod = rng.uniform(300, 900)  # arbitrary scanner units, as in real BraTS
        v = np.clip(v, 0, None) * scale_mod * brain
        volumes[mod] = v.astype(np.float32)
    return volumes, seg, brain


#: naming of each year's layout (see :mod:`medseg.data.formats.brats`)
YEAR_LAYOUTS = (2013, 2020, 2021, 2023)


def write_brats(
    out: str | Path,
    n_cases: int = 4,
    shape: Sequence[int] = (240, 240, 155),
    seed: int = 0,
    tumour_centers: Sequence[Sequence[int] | None] | None = None,
    validation_cases: int = 0,
    head: str = "ellipsoid",
    affine: np.ndarray | None = None,
    tumours_mni: Sequence[Sequence[tuple[Sequence[float], float]]] | None = None,
    world_from_mni: Sequence[np.ndarray | None] | None = None,
    year: int = 2020,
) -> Path:
    """Write ``n_cases`` training cases (and ``validation_cases`` without seg) under ``out``.

    Layout by ``year``:

    * 2020 (2018-2020): ``out/MICCAI_BraTS2020_TrainingData/BraTS20_Training_001/BraTS20_Training_001_{flair,t1,
      t1ce,t2,seg}.nii.gz`` and ``out/MICCAI_BraTS2020_ValidationData/BraTS20_Validation_001/...``;
      modalities int16, seg uint8 {0,1,2,4}.
    * 2021: ``out/BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz`` (validation:
      ``out/BraTS2021_ValidationData/BraTS2021_01000/...``).
    * 2023: ``out/ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,
      t1n,t1c,t2w,seg}.nii.gz``; seg labels {0,1,2,3} with **3 = enhancing tumour**.
    * 2013: ``out/brats_2013_pat0001_1/{Flair,T1,T1c,T2}_subtrMeanDivStd.nii.gz`` (float32, z-scored
      inside the brain, so the background is a negative constant, not 0), ``OTMultiClass.nii.gz``
      {0,1,2,4} and ``brainmask.nii.gz``.

    1 mm voxels, affine :func:`brats_affine`.

    Args:
        out: output folder.
        n_cases: number of training cases.
        shape: volume shape in NIfTI index order (i, j, k); real BraTS is (240, 240, 155).
        seed: random seed; case ``k`` (training first, then validation) is
            ``make_head(np.random.default_rng((seed, k)), shape, tumour_centers[k])``.
        tumour_centers: optional list, one entry per training case (then validation cases), of 3
            voxel indices (i, j, k) where that case's tumour is centred, or ``None`` for random.
        validation_cases: number of unlabelled validation cases (2020, 2021, 2023).
        year: the layout, one of :data:`YEAR_LAYOUTS` (2018 and 2019 are named as 2020).
        head: ``"ellipsoid"`` (default, :func:`make_head`) or ``"mni"``: a brain-shaped head resampled from
            the MNI152 template (:func:`medseg.data.synth.head.mni_head`), with tumours placed at MNI
            coordinates (``tumours_mni``) instead of voxel indices.
        affine: header affine of every case (default :func:`brats_affine`; any voxel size or orientation);
            ``head="mni"`` only.
        tumours_mni: ``head="mni"``: per case (training, then validation), a list of
            ``(MNI centre mm, radius mm)``; missing entries get no tumour.
        world_from_mni: ``head="mni"``: per case, the placement (4 x 4, MNI mm -> world mm) or ``None``
            for the centred default; recorded in the marker file.

    Returns ``out``.
    """
    out = Path(out)
    shape = tuple(int(s) for s in shape)
    if head not in ("ellipsoid", "mni"):
        raise ValueError(f"head must be 'ellipsoid' or 'mni', got {head!r}")
    if head != "mni" and (affine is not None or tumours_mni or world_from_mni):
        raise ValueError("affine, tumours_mni and world_from_mni need head='mni'")
    affine = brats_affine(shape) if affine is None else np.asarray(affine, float)
    zooms = tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    centers = list(tumour_centers or [])
    placed: list = []
    year = 2020 if year in (2018, 2019) else 2023 if int(year) > 2023 else int(year)
    if year not in YEAR_LAYOUTS:
        raise ValueError(f"year must be one of 2013, 2018-2021, 2023+, got {year}")
    if year == 2013 and validation_cases:
        raise ValueError("the 2013 layout has no validation folder: use validation_cases=0")

    def save(path: Path, arr: np.ndarray) -> None:
        write_nifti(path, arr, affine, spacing=zooms)

    plan = [(True, i) for i in range(n_cases)] + [(False, i) for i in range(validation_cases)]
    for k, (labelled, i) in enumerate(plan):
        center = centers[k] if k < len(centers) else None
        if head == "mni":
            vols, seg, placed_k = _mni_case(np.random.default_rng((seed, k)), shape, affine, k, tumours_mni,
                                            world_from_mni)
            brain = placed_k.pop("brain")
            placed.append(placed_k)
        else:
            vols, seg, brain = make_head(np.random.default_rng((seed, k)), shape, center)
        if year == 2020:
            kind = "Training" if labelled else "Validation"
            cid = f"BraTS20_{kind}_{i + 1:03d}"
            d = out / (TRAIN_DIR if labelled else VAL_DIR) / cid
            names = {m: f"{cid}_{m}.nii.gz" for m in vols} | {"seg": f"{cid}_seg.nii.gz"}
        elif year == 2021:
            cid = f"BraTS2021_{i + (0 if labelled else 1000):05d}"
            d = out / cid if labelled else out / "BraTS2021_ValidationData" / cid
            names = {m: f"{cid}_{m}.nii.gz" for m in vols} | {"seg": f"{cid}_seg.nii.gz"}
        elif year == 2023:
            cid = f"BraTS-GLI-{i + (0 if labelled else 1000):05d}-000"
            d = out / f"ASNR-MICCAI-BraTS2023-GLI-Challenge-{'Training' if labelled else 'Validation'}Data" / cid
            new = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}
            names = {m: f"{cid}-{new[m]}.nii.gz" for m in (*vols, "seg")}
            seg = np.where(seg == 4, 3, seg).astype(np.uint8)  # 2023+: 3 is the enhancing tumour
        else:
            cid = f"brats_2013_pat{i + 1:04d}_1"
            d = out / cid
            names = {m: f"{m.replace('t1ce', 't1c').capitalize()}_subtrMeanDivStd.nii.gz" for m in vols}
            names["seg"] = "OTMultiClass.nii.gz"
            vols = {m: _zscore_in(v, brain) for m, v in vols.items()}
            save(d / "brainmask.nii.gz", brain.astype(np.uint8))
        for mod, v in vols.items():
            save(d / names[mod], v if year == 2013 else np.round(v).astype(np.int16))
        if labelled:
            save(d / names["seg"], seg)
    write_json_atomic(out / MARKER, {"generator": "medseg.data.synth.brats", "seed": seed, "n_cases": n_cases,
                                     "validation_cases": validation_cases, "shape": list(shape), "year": year,
                                     "tumour_centers": [None if c is None else list(map(int, c)) for c in centers],
                                     **({"head": "mni", "affine": affine.tolist(), "cases": placed} if head == "mni"
                                        else {})})
    return out


def _mni_case(rng: np.random.Generator, shape: tuple[int, ...], affine: np.ndarray, k: int,
              tumours_mni: Sequence | None, world_from_mni: Sequence | None) -> tuple[dict, np.ndarray, dict]:
    """One ``head="mni"`` case and what the marker records of it (placement, tumours in MNI mm)."""
    from medseg.data.synth.head import centred_world_from_mni, mni_head

    tumours = list((tumours_mni or [])[k]) if tumours_mni and k < len(tumours_mni) else []
    place = world_from_mni[k] if world_from_mni and k < len(world_from_mni) else None
    place = centred_world_from_mni(shape, affine) if place is None else np.asarray(place, float)
    vols, seg, brain = mni_head(rng, shape, affine, place, tumours)
    return vols, seg, {"brain": brain, "world_from_mni": place.tolist(),
                       "tumours_mni": [{"centre": [float(c) for c in t[0]], "radius_mm": float(t[1])} for t in tumours]}


def _zscore_in(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """BraTS 2013's ``subtrMeanDivStd``: z-scored with the brain's statistics, background included
    (so the background is ``-mean/std``, a negative constant, not 0)."""
    vals = volume[brain]
    return ((volume - vals.mean()) / (vals.std() + 1e-6)).astype(np.float32)
