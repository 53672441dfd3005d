"""Wording and numbers of the cross-check: exact shares, "confirmed" only above the stated minimum share,
symptoms-only regions never recommend anyone."""

from __future__ import annotations

import pytest

from medseg.apps.clinical import db
from medseg.apps.clinical.crosscheck import REASON_TEXT, cross_check
from medseg.apps.clinical.localise import Localisation, RegionOverlap


def _loc(counts: dict[tuple[str | None, str], int], outside: int = 0, min_fraction: float = 0.05) -> Localisation:
    n = sum(counts.values()) + outside
    structures = [RegionOverlap(f"{side} {s}" if side else s, s, side, c, c * 0.001, c / n)
                  for (side, s), c in counts.items()]
    return Localisation(volumes_cm3={"WT": n * 0.001, "TC": None, "ET": None}, centroid_voxel=(0, 0, 0),
                        centroid_mm=(0, 0, 0), hemisphere="left", side_fractions={"left": 1.0, "right": 0.0},
                        regions=list(structures), outside_fraction=outside / n, axcodes=("R", "A", "S"),
                        atlas="test", min_fraction=min_fraction, structures=structures, tumour_voxels=n)


@pytest.fixture
def session(tmp_path):
    engine = db.connect(f"sqlite:///{tmp_path / 'c.db'}")
    db.load_csv_dir(engine, db.DEMO_DIR)
    with db.session_scope(engine) as s:
        yield s
    engine.dispose()


def test_shares_are_exact_and_image_support_never_exceeds_one(session):
    # 4/6, 1/6, 1/6: rounded to 4 places these sum to 1.0001 (the reported bug); the counts sum to exactly 1
    loc = _loc({("left", "frontal lobe"): 4, ("left", "temporal lobe"): 1, ("left", "insula"): 1}, min_fraction=0.1)
    check = cross_check(session, loc, [("aphasia", None), ("seizures", None)])
    assert check.image_support == 1.0
    assert round(4 / 6, 4) + 2 * round(1 / 6, 4) > 1.0  # why exact sums matter
    frontal = next(r for r in check.regions if r.name == "left frontal lobe")
    assert frontal.image_fraction == 4 / 6 and frontal.reason == "both"
    assert check.symptom_support == 1.0 and check.agreement == 1.0


def test_confirmed_only_above_the_minimum_share_and_symptoms_alone_recommend_nobody(session):
    # 97% left frontal, 3% left temporal (below min_fraction 5%); right-sided ataxia points to the right
    # cerebellum, which holds nothing
    loc = _loc({("left", "frontal lobe"): 97, ("left", "temporal lobe"): 3})
    check = cross_check(session, loc, [("aphasia", None), ("ataxia", "right")])
    reasons = {r.name: r for r in check.regions}
    assert reasons["left frontal lobe"].reason == "both" and reasons["left frontal lobe"].confirmed
    temporal = reasons["left temporal lobe"]
    assert temporal.reason == "symptoms only" and not temporal.confirmed and temporal.image_fraction == 0.03
    assert REASON_TEXT[temporal.reason] == "suggested by symptoms, not seen in the image"
    cerebellum = reasons["right cerebellum"]
    assert cerebellum.reason == "symptoms only" and cerebellum.image_fraction == 0.0 and cerebellum.weight == 0.0
    treated = {s for r in check.recommendations for s in r.structures}
    assert treated == {"left frontal lobe"}                             # nothing for symptoms-only regions
    assert "H-HRB" not in {r.key for r in check.recommendations}        # the cerebellum hospital
    assert check.image_support == 1.0 and check.symptom_support == 0.5  # ataxia is not explained


def test_no_confirmed_region_means_no_recommendation(session):
    loc = _loc({("left", "frontal lobe"): 2}, outside=98)
    check = cross_check(session, loc, [("aphasia", None)])
    assert not any(r.confirmed for r in check.regions) and check.recommendations == []
    assert any("no recommendation is made" in m for m in check.messages)
