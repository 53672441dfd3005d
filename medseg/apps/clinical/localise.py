"""Where is the tumour? Volumes, centroid, hemisphere and atlas regions of a BraTS segmentation.

BraTS labels: 1 necrotic / non-enhancing core, 2 oedema, 4 enhancing tumour (BraTS 2023 and later
write enhancing tumour as 3; both 3 and 4 count as enhancing here). The evaluated regions are

* whole tumour ``WT`` = 1 | 2 | 3 | 4, tumour core ``TC`` = 1 | 3 | 4, enhancing tumour ``ET`` = 3 | 4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medseg.apps.clinical.errors import ClinicalDataError
from medseg.apps.clinical.regions import Atlas, voxel_to_frame

TUMOUR_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3, 4), "TC": (1, 3, 4), "ET": (3, 4)}
REGION_TITLES = {"WT": "whole tumour", "TC": "tumour core", "ET": "enhancing tumour"}


def regions_from_labels(seg: np.ndarray) -> dict[str, np.ndarray]:
    """BraTS label map -> boolean maps ``{"WT", "TC", "ET"}``."""
    seg = np.rint(np.asarray(seg)).astype(np.int16)
    unknown = sorted(set(np.unique(seg).tolist()) - {0, 1, 2, 3, 4})
    if unknown:
        raise ClinicalDataError(f"segmentation has labels {unknown[:10]}; BraTS labels are 0, 1, 2, 4 (or 3)")
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
    """Result of :func:`localise`. ``fraction`` values are exact shares of the whole-tumour volume
    (voxel counts divided by the tumour's count; rounded only when displayed).

    ``regions`` are the atlas's own labels (gyri for the MNI atlas); ``structures`` sum them per
    (side, structure) -- the lobe-level names the symptom table and the hospitals use. With
    ``named=False`` (registration below its quality floor) both are empty and ``hemisphere`` is
    ``"not named"``: the flow refuses to name regions it cannot place.
    """

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
    structures: list[RegionOverlap] = field(default_factory=list)
    named: bool = True
    centroid_mni: tuple[float, float, float] | None = None
    tumour_voxels: int = 0

    @property
    def found(self) -> list[RegionOverlap]:
        """Structures (side + lobe-level structure) holding at least ``min_fraction`` of the tumour."""
        return [r for r in self.structures if r.fraction >= self.min_fraction]

    @property
    def found_regions(self) -> list[RegionOverlap]:
        """Atlas labels holding at least ``min_fraction`` of the tumour."""
        return [r for r in self.regions if r.fraction >= self.min_fraction]

    def to_dict(self) -> dict:
        return asdict(self)


def localise(tumour: Mapping[str, np.ndarray | None], affine: np.ndarray, atlas: Atlas,
             min_fraction: float = 0.05, bilateral_fraction: float = 0.25,
             source: str = "segmentation", named: bool = True) -> Localisation:
    """Localise a tumour given as boolean maps ``{"WT": ..., "TC": ..., "ET": ...}`` on one grid.

    Args:
        tumour: boolean maps of the same 3D shape; ``TC``/``ET`` may be ``None`` (not predicted by a
            binary model), their volumes are then ``None``.
        affine: NIfTI affine of that grid (voxel sizes and directions come from it).
        atlas: the region map (:class:`~medseg.apps.clinical.regions.CoarseAtlas` or a label map).
        min_fraction: share of the tumour a region needs to count as *found*.
        bilateral_fraction: hemisphere is ``bilateral`` when the smaller side holds at least this share.
        source: named in error messages (file or case).
        named: ``False``: measure volumes only and name no region or hemisphere (a registration below
            its quality floor).

    Raises:
        ClinicalDataError: no tumour voxels, or maps of different shapes.
    """
    import nibabel as nib

    wt = tumour.get("WT")
    if wt is None:
        raise ClinicalDataError(f"{source}: no whole-tumour map to localise")
    wt = np.asarray(wt, bool)
    if wt.ndim != 3:
        raise ClinicalDataError(f"{source}: segmentation must be 3D, got shape {wt.shape}")
    for name, m in tumour.items():
        if m is not None and np.shape(m) != wt.shape:
            raise ClinicalDataError(f"{source}: {name} map shape {np.shape(m)} differs from WT {wt.shape}")
    n = int(wt.sum())
    if n == 0:
        raise ClinicalDataError(f"{source}: the segmentation contains no tumour (no voxel with label 1, 2, 3 or 4); "
                            "nothing to localise")
    affine = np.asarray(affine, float)
    voxel_cm3 = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    volumes: dict[str, float | None] = {
        k: (None if (m := tumour.get(k)) is None else float(np.count_nonzero(m)) * voxel_cm3) for k in TUMOUR_REGIONS}

    ijk = np.argwhere(wt)
    centroid = ijk.mean(axis=0)
    centroid_mm = (centroid @ affine[:3, :3].T + affine[:3, 3])
    zooms = tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    common: dict[str, Any] = dict(volumes_cm3=volumes, centroid_voxel=tuple(float(c) for c in centroid),
                  centroid_mm=tuple(float(c) for c in centroid_mm), axcodes=tuple(nib.aff2axcodes(affine)),
                  atlas=getattr(atlas, "name", type(atlas).__name__), min_fraction=min_fraction, spacing=zooms,
                  tumour_voxels=n)
    if not named:
        return Localisation(hemisphere="not named", side_fractions={}, regions=[], outside_fraction=1.0,
                            named=False, **common)
    # hemisphere from RAS x measured from the mid-sagittal plane: the atlas's own (MNI x after
    # registration) or the grid centre's; the affine decides which array direction is patient left
    x = (atlas.hemisphere_x(ijk, wt.shape, affine) if hasattr(atlas, "hemisphere_x")
         else voxel_to_frame(ijk, wt.shape, affine, "grid_centre")[:, 0])
    n_left = int(np.count_nonzero(x < 0))
    left = n_left / n
    side_fractions = {"left": left, "right": (n - n_left) / n}
    if min(left, 1 - left) >= bilateral_fraction:
        hemisphere = "bilateral"
    else:
        hemisphere = "left" if left > 0.5 else "right"

    labels = atlas.labels_at(ijk, wt.shape, affine)
    values, counts = np.unique(labels, return_counts=True)
    overlaps = []
    per_structure: dict[tuple[str | None, str], int] = {}
    outside = 0
    for value, count in zip(values.tolist(), counts.tolist()):
        if value == 0 or value not in atlas.regions:
            outside += count
            continue
        reg = atlas.regions[value]
        overlaps.append(RegionOverlap(reg.name, reg.structure, reg.side, int(count), count * voxel_cm3, count / n))
        key = (reg.side, reg.structure or reg.name)
        per_structure[key] = per_structure.get(key, 0) + int(count)
    overlaps.sort(key=lambda r: (-r.voxels, r.name))
    structures = [RegionOverlap(f"{side} {structure}" if side else structure, structure, side, c, c * voxel_cm3, c / n)
                  for (side, structure), c in per_structure.items()]
    structures.sort(key=lambda r: (-r.voxels, r.name))
    centroid_mni = None
    if hasattr(atlas, "to_mni"):
        cx, cy, cz = (float(v) for v in atlas.to_mni(centroid[None], affine)[0])
        centroid_mni = (cx, cy, cz)
    return Localisation(hemisphere=hemisphere, side_fractions=side_fractions, regions=overlaps,
                        outside_fraction=outside / n, structures=structures, centroid_mni=centroid_mni, **common)


def describe(loc: Localisation, top: int = 3) -> str:
    """One line: ``left frontal lobe (82%), left insula (9%); hemisphere left; WT 12.3 cm3``."""
    if not loc.named:
        return f"regions not named (registration below its quality floor); WT {loc.volumes_cm3['WT']:.1f} cm3"
    parts = [f"{r.name} ({100 * r.fraction:.0f}%)" for r in loc.found[:top]] or ["no atlas region"]
    return f"{', '.join(parts)}; hemisphere {loc.hemisphere}; WT {loc.volumes_cm3['WT']:.1f} cm3"

