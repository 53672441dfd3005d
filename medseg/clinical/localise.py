"""Where is the tumour? Volumes, centroid, hemisphere and atlas regions of a BraTS segmentation.

BraTS labels: 1 necrotic / non-enhancing core, 2 oedema, 4 enhancing tumour (BraTS 2023 and later
write enhancing tumour as 3; both 3 and 4 count as enhancing here). The evaluated regions are

* whole tumour ``WT`` = 1 | 2 | 3 | 4, tumour core ``TC`` = 1 | 3 | 4, enhancing tumour ``ET`` = 3 | 4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from medseg.clinical import ClinicalError
from medseg.clinical.regions import Atlas, voxel_to_frame

TUMOUR_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (3, 4)}
REGION_TITLES = {"WT": "whole tumour", "TC": "tumour core", "ET": "enhancing tumour"}


def regions_from_labels(seg: np.ndarray) -> dict[str, np.ndarray]:
    """BraTS label map -> boolean maps ``{"WT", "TC", "ET"}``."""
    seg = np.rint(np.asarray(seg)).astype(np.int16)
    unknown = sorted(set(np.unique(seg).tolist()) - {0, 1, 2, 3, 4})
    if unknown:
        raise ClinicalError(f"segmentation has labels {unknown[:10]}; BraTS labels are 0, 1, 2, 4 (or 3)")
    return {name: np.isin(seg, labels) for name, labels in TUMOUR_REGIONS.items()}


@dataclass
class RegionOverlap:
    """The part of the whole tumour inside one atlas region."""

    name: str
    structure: str | None
    side: str | None
    voxels: int
    volume_cm3: float
    fraction: float


@dataclass
class Localisation:
    """Result of :func:`localise`. ``fraction`` values are shares of the whole-tumour volume."""

    volumes_cm3: dict[str, float | None]
    centroid_voxel: tuple[float, float, float]
    centroid_mm: tuple[float, float, float]
    hemisphere: str
    side_fractions: dict[str, float]
    regions: list[RegionOverlap]
    outside_fraction: float
    axcodes: tuple[str, str, str]
    atlas: str
    min_fraction: float
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def found(self) -> list[RegionOverlap]:
        """Regions holding at least ``min_fraction`` of the tumour (the image's answer)."""
        return [r for r in self.regions if r.fraction >= self.min_fraction]

    def to_dict(self) -> dict:
        return asdict(self)


def localise(tumour: Mapping[str, np.ndarray | None], affine: np.ndarray, atlas: Atlas,
             min_fraction: float = 0.05, bilateral_fraction: float = 0.25,
             source: str = "segmentation") -> Localisation:
    """Localise a tumour given as boolean maps ``{"WT": ..., "TC": ..., "ET": ...}`` on one grid.

    Args:
        tumour: boolean maps of the same 3D shape; ``TC``/``ET`` may be ``None`` (not predicted by a
            binary model), their volumes are then ``None``.
        affine: NIfTI affine of that grid (voxel sizes and directions come from it).
        atlas: the region map (:class:`~medseg.clinical.regions.CoarseAtlas` or a label map).
        min_fraction: share of the tumour a region needs to count as *found*.
        bilateral_fraction: hemisphere is ``bilateral`` when the smaller side holds at least this share.
        source: named in error messages (file or case).

    Raises:
        ClinicalError: no tumour voxels, or maps of different shapes.
    """
    import nibabel as nib

    wt = tumour.get("WT")
    if wt is None:
        raise ClinicalError(f"{source}: no whole-tumour map to localise")
    wt = np.asarray(wt, bool)
    if wt.ndim != 3:
        raise ClinicalError(f"{source}: segmentation must be 3D, got shape {wt.shape}")
    for name, m in tumour.items():
        if m is not None and np.shape(m) != wt.shape:
            raise ClinicalError(f"{source}: {name} map shape {np.shape(m)} differs from WT {wt.shape}")
    n = int(wt.sum())
    if n == 0:
        raise ClinicalError(f"{source}: the segmentation contains no tumour (no voxel with label 1, 2, 3 or 4); "
                            "nothing to localise")
    affine = np.asarray(affine, float)
    voxel_cm3 = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    volumes = {k: (None if tumour.get(k) is None else round(float(np.count_nonzero(tumour[k])) * voxel_cm3, 3))
               for k in TUMOUR_REGIONS}

    ijk = np.argwhere(wt)
    centroid = ijk.mean(axis=0)
    centroid_mm = (centroid @ affine[:3, :3].T + affine[:3, 3])
    # hemisphere from RAS x measured from the mid-sagittal plane (the grid centre): the affine decides
    # which array direction is patient left, whatever the storage order
    x = voxel_to_frame(ijk, wt.shape, affine, "grid_centre")[:, 0]
    left = float(np.mean(x < 0))
    side_fractions = {"left": round(left, 4), "right": round(1 - left, 4)}
    if min(left, 1 - left) >= bilateral_fraction:
        hemisphere = "bilateral"
    else:
        hemisphere = "left" if left > 0.5 else "right"

    labels = atlas.labels_at(ijk, wt.shape, affine)
    values, counts = np.unique(labels, return_counts=True)
    overlaps = []
    outside = 0
    for value, count in zip(values.tolist(), counts.tolist()):
        if value == 0 or value not in atlas.regions:
            outside += count
            continue
        reg = atlas.regions[value]
        overlaps.append(RegionOverlap(reg.name, reg.structure, reg.side, int(count),
                                      round(count * voxel_cm3, 3), round(count / n, 4)))
    overlaps.sort(key=lambda r: (-r.voxels, r.name))
    zooms = tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    return Localisation(
        volumes_cm3=volumes, centroid_voxel=tuple(round(float(c), 2) for c in centroid),
        centroid_mm=tuple(round(float(c), 2) for c in centroid_mm), hemisphere=hemisphere,
        side_fractions=side_fractions, regions=overlaps, outside_fraction=round(outside / n, 4),
        axcodes=tuple(nib.aff2axcodes(affine)), atlas=getattr(atlas, "name", type(atlas).__name__),
        min_fraction=min_fraction, spacing=zooms,
    )


def describe(loc: Localisation, top: int = 3) -> str:
    """One line: ``left frontal lobe (82%), left insula (9%); hemisphere left; WT 12.3 cm3``."""
    parts = [f"{r.name} ({100 * r.fraction:.0f}%)" for r in loc.found[:top]] or ["no atlas region"]
    return f"{', '.join(parts)}; hemisphere {loc.hemisphere}; WT {loc.volumes_cm3['WT']:.1f} cm3"

