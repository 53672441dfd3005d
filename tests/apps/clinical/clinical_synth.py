"""Synthetic BraTS-format cases for the clinical tests, with the tumour placed by array index.

(Imported as ``tests.apps.clinical.clinical_synth``, like ``tests.conftest`` elsewhere.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# A downscaled BraTS grid: 60 x 60 x 39 voxels of 4 mm covers the 240 x 240 x 155 mm SRI24 box.
SHAPE = (60, 60, 39)
VOXEL = 4.0
# Header affines of the same head stored two ways. LPS (as BraTS ships it): +i -> patient Left,
# +j -> Posterior, +k -> Superior. RAS: +i -> Right, +j -> Anterior, +k -> Superior.
AFFINES = {
    "LPS": np.array([[-VOXEL, 0, 0, 0], [0, -VOXEL, 0, 239.0], [0, 0, VOXEL, 0], [0, 0, 0, 1]]),
    "RAS": np.array([[VOXEL, 0, 0, -239.0], [0, VOXEL, 0, 0], [0, 0, VOXEL, 0], [0, 0, 0, 1]]),
}


def index_of(mm_from_centre: tuple[float, float, float], orientation: str) -> tuple[int, int, int]:
    """Array index of a point given in mm from the box centre as (right, anterior, superior),
    worked out by hand for the two storage orders above (not with the code under test)."""
    r, a, s = mm_from_centre
    ci, cj, ck = ((n - 1) / 2 for n in SHAPE)
    if orientation == "LPS":   # i grows to the left, j grows to the back
        return round(ci - r / VOXEL), round(cj - a / VOXEL), round(ck + s / VOXEL)
    return round(ci + r / VOXEL), round(cj + a / VOXEL), round(ck + s / VOXEL)


def write_case(root: Path, case_id: str = "BraTS20_Training_001", centre_mm=(-35.0, 40.0, 30.0),
               orientation: str = "LPS", radius_vox: float = 3.5, modalities=("flair", "t1", "t1ce", "t2"),
               with_seg: bool = True, empty: bool = False, seed: int = 0) -> Path:
    """Write ``root/<case_id>/<case_id>_{modality,seg}.nii.gz`` with a spherical tumour at ``centre_mm``
    (BraTS labels: 4 enhancing rim, 1 necrotic centre, 2 oedema around)."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    affine = AFFINES[orientation]
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    c = np.array([(n - 1) / 2 for n in SHAPE])
    brain = ((ii - c[0]) / 17) ** 2 + ((jj - c[1]) / 21) ** 2 + ((kk - c[2]) / 16) ** 2 <= 1
    t = np.array(index_of(centre_mm, orientation))
    d = np.sqrt((ii - t[0]) ** 2 + (jj - t[1]) ** 2 + (kk - t[2]) ** 2)
    seg = np.zeros(SHAPE, np.uint8)
    if not empty:
        seg[d <= radius_vox + 1.5] = 2
        seg[d <= radius_vox] = 4
        seg[d <= radius_vox - 1.5] = 1
    for m in modalities:
        img = np.where(brain, 0.5 + 0.05 * rng.standard_normal(SHAPE), 0.0)
        if m in ("flair", "t2"):
            img = np.where(seg > 0, 1.0, img)
        if m == "t1ce":
            img = np.where(seg == 4, 1.2, img)
        nib.save(nib.Nifti1Image((img * 1000).astype(np.float32), affine), str(folder / f"{case_id}_{m}.nii.gz"))
    if with_seg:
        nib.save(nib.Nifti1Image(seg, affine), str(folder / f"{case_id}_seg.nii.gz"))
    return folder
