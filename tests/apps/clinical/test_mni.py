"""The MNI atlas through registration: synthetic MNI-derived heads written by the BraTS generator with a
random known affine, tumours at known MNI coordinates; the flow must find the region and hemisphere.

Heads are written on a 2 mm grid (120 x 120 x 78 covering the 240 x 240 x 155 mm SRI24 box) to keep the
tests fast; the full 1 mm grid is exercised by the report screenshot test (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.apps.clinical import db
from medseg.apps.clinical.flow import diagnose, make_atlas
from medseg.apps.clinical.mni import MNIAtlas
from medseg.data.synth.brats import TRAIN_DIR, brats_affine, write_brats
from medseg.data.synth.head import random_world_from_mni

SHAPE = (120, 120, 78)


def grid_affine(orientation: str) -> np.ndarray:
    if orientation == "LPS":  # the BraTS header convention at 2 mm
        aff = brats_affine(SHAPE) @ np.diag([2.0, 2.0, 2.0, 1.0])
        aff[1, 3] = 239.0
        return aff
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = (-119.0, -119.0, -10.0)
    return aff


@pytest.fixture
def sqlite_demo(tmp_path):
    url = f"sqlite:///{tmp_path / 'clinical.db'}"
    engine = db.connect(url)
    db.load_csv_dir(engine, db.DEMO_DIR)
    engine.dispose()
    return url


def write_head(root, tumours, orientation="LPS", seed=0, placement=None):
    """One case BraTS20_Training_001 with ``tumours`` [(MNI mm, radius mm)], randomly placed."""
    aff = grid_affine(orientation)
    place = random_world_from_mni(np.random.default_rng(seed), SHAPE, aff) if placement is None else placement
    write_brats(root, n_cases=1, shape=SHAPE, seed=seed, head="mni", affine=aff, tumours_mni=[tumours],
                world_from_mni=[place])
    return root / TRAIN_DIR / "BraTS20_Training_001", place


# (MNI centre mm, radius mm), the atlas label expected at the centre, the structure key, hemisphere
PLACES = {
    "left precentral gyrus": ((-38.0, -20.0, 55.0), 7.0, "left precentral gyrus", ("left", "frontal lobe"), "left"),
    "right occipital lobe": ((28.0, -88.0, 4.0), 7.0, None, ("right", "occipital lobe"), "right"),
    "midline brainstem": ((0.0, -28.0, -32.0), 6.0, "brainstem", (None, "brainstem"), "bilateral"),
}


@pytest.mark.parametrize("where, orientation, seed", [("left precentral gyrus", "LPS", 1),
                                                      ("right occipital lobe", "RAS", 2),
                                                      ("midline brainstem", "LPS", 3)])
def test_registration_recovers_region_and_hemisphere(where, orientation, seed, sqlite_demo, tmp_path):
    centre, radius, label, structure, hemisphere = PLACES[where]
    case, place = write_head(tmp_path / "BraTS", [(centre, radius)], orientation, seed)
    marker = json.loads((tmp_path / "BraTS" / ".medseg_synthetic.json").read_text())
    assert marker["head"] == "mni" and np.allclose(marker["cases"][0]["world_from_mni"], place)
    report = where == "left precentral gyrus"  # one report is enough (plots cost seconds)
    result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=sqlite_demo,
                      out_dir=tmp_path / "out" if report else None)
    reg, loc = result.registration, result.localisation
    assert reg.ok and reg.dice > 0.95 and reg.modality == "t1"
    # the registration undoes the random placement: the tumour centre goes back to its MNI point
    world = place[:3, :3] @ np.array(centre) + place[:3, 3]
    back = reg.case_to_mni[:3, :3] @ world + reg.case_to_mni[:3, 3]
    assert np.linalg.norm(back - centre) < 3.0
    assert np.linalg.norm(np.array(loc.centroid_mni) - centre) < 4.0
    assert (loc.found[0].side, loc.found[0].structure) == structure
    assert loc.hemisphere == hemisphere
    if label is not None:
        assert loc.found_regions[0].name == label
    if not report:
        return
    # the report carries the atlas, its licence, the registration quality and the picture, and the disclaimer
    md = result.report_md.read_text()
    assert "Harvard-Oxford" in md and "FSL licence" in md and f"**{reg.dice:.3f}**" in md
    assert "Research software, not a diagnosis" in md and (tmp_path / "out" / "registration.png").stat().st_size > 5000
    saved = json.loads((tmp_path / "out" / "diagnosis.json").read_text())
    assert saved["registration"]["ok"] is True and saved["atlas"].startswith("Harvard-Oxford")


def test_flair_is_used_without_t1_and_a_random_pose_still_registers(sqlite_demo, tmp_path):
    centre, radius, label, structure, _ = PLACES["left precentral gyrus"]
    case, _ = write_head(tmp_path / "BraTS", [(centre, radius)], "RAS", seed=7)
    (case / f"{case.name}_t1.nii.gz").unlink()
    result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=sqlite_demo)
    assert result.registration.modality == "flair" and result.registration.ok
    assert result.localisation.found_regions[0].name == label


def test_mni_atlas_without_t1_or_flair_is_a_data_error(sqlite_demo, tmp_path):
    from medseg.apps.clinical import ClinicalDataError

    case, _ = write_head(tmp_path / "BraTS", [((-38.0, -20.0, 55.0), 7.0)], "LPS", seed=5)
    for m in ("t1", "flair"):
        (case / f"{case.name}_{m}.nii.gz").unlink()
    with pytest.raises(ClinicalDataError, match="T1 or FLAIR.*found neither.*atlas.kind=coarse") as err:
        diagnose(case_dir=case, patient_id="DEMO-001", db_url=sqlite_demo)
    assert err.value.exit_code == 3


def test_a_bad_registration_names_no_region(sqlite_demo, tmp_path):
    """A brain whose upper half is missing from the image cannot be placed well: Dice below the floor, so the
    flow names no region, no hemisphere, and recommends nobody (DEMO-001's symptoms are listed as
    suggestions only)."""
    import nibabel as nib

    centre, radius, *_ = PLACES["left precentral gyrus"]
    case, _ = write_head(tmp_path / "BraTS", [((-30.0, -20.0, 20.0), radius)], "LPS", seed=4)
    for m in ("t1", "flair"):
        path = case / f"{case.name}_{m}.nii.gz"
        img = nib.load(path)
        data = np.asarray(img.dataobj).copy()
        data[:, :, 40:] = 0
        nib.save(nib.Nifti1Image(data, img.affine), path)
    result = diagnose(case_dir=case, patient_id="DEMO-001", db_url=sqlite_demo, out_dir=tmp_path / "out")
    reg, loc, check = result.registration, result.localisation, result.crosscheck
    assert not reg.ok and reg.dice < 0.88
    assert loc.found == [] and loc.regions == [] and loc.hemisphere == "not named"
    assert check.recommendations == [] and check.agreement is None
    assert {r.reason for r in check.regions} == {"symptoms only"}
    md = result.report_md.read_text()
    assert "**below** (no region is named)" in md and "not named" in md


def test_mni_atlas_labels_and_structures():
    atlas = MNIAtlas()
    assert atlas.label_at_mni((-38, -20, 55)).name == "left precentral gyrus"
    assert atlas.label_at_mni((38, -20, 55)).name == "right precentral gyrus"
    assert (atlas.label_at_mni((0, -28, -32)).structure, atlas.label_at_mni((0, -28, -32)).side) == ("brainstem", None)
    assert atlas.label_at_mni((-20, -60, -40)).name == "left cerebellar hemisphere"
    assert atlas.label_at_mni((-28, -10, 40)).structure == "frontal lobe"  # deep white matter: nearest gyrus
    assert atlas.label_at_mni((0, 0, 100)) is None or atlas.label_at_mni((0, 0, 100)).label == 0
    with pytest.raises(RuntimeError, match="needs a registration"):
        atlas.labels_at(np.zeros((1, 3)), (2, 2, 2), np.eye(4))
    assert isinstance(make_atlas(), MNIAtlas) and make_atlas(kind="coarse").name.startswith("coarse")


def test_registration_is_deterministic_for_a_seed(tmp_path):
    """The metric's random sampling is seeded: two runs with one seed give the same transform (SimpleITK reads
    seed 0 as 'wall clock', which once made the viewer and a direct call disagree near the quality floor)."""
    import nibabel as nib

    from medseg.apps.clinical.register import register_to_mni

    case, _ = write_head(tmp_path / "BraTS", [((-38.0, -20.0, 55.0), 7.0)], "LPS", seed=6)
    img = nib.load(case / f"{case.name}_t1.nii.gz")
    data = np.asarray(img.dataobj, np.float32)
    runs = [register_to_mni(data, img.affine, seed=0, iterations=30) for _ in range(2)]
    assert np.array_equal(runs[0].case_to_mni, runs[1].case_to_mni) and runs[0].dice == runs[1].dice
    other = register_to_mni(data, img.affine, seed=5, iterations=30)
    assert not np.array_equal(other.case_to_mni, runs[0].case_to_mni)  # the seed is used
