"""The coarse SRI24 atlas and user label maps: geometry, orientation handling, names tables."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.apps.clinical import ClinicalError
from medseg.apps.clinical.regions import (
    STRUCTURES,
    CoarseAtlas,
    LabelMapAtlas,
    coarse_label,
    read_names_table,
    write_coarse_atlas,
)
from tests.apps.clinical.clinical_synth import AFFINES, SHAPE


@pytest.mark.parametrize("point, expected", [
    ((-40, 50, 30), "left frontal lobe"),
    ((30, -65, 10), "right occipital lobe"),
    ((45, 0, -20), "right temporal lobe"),
    ((-40, -30, 40), "left parietal lobe"),
    ((-38, 4, 4), "left insula"),
    ((16, -6, 8), "right deep grey matter"),
    ((-25, -55, -48), "left cerebellum"),
    ((5, -22, -50), "right brainstem"),
])
def test_coarse_atlas_places_structures_where_documented(point, expected):
    atlas = CoarseAtlas()
    label = int(atlas.labels_at_mm(np.array([point]))[0])
    assert atlas.regions[label].name == expected


def test_coarse_atlas_outside_brain_is_zero_and_hemispheres_mirror():
    atlas = CoarseAtlas()
    assert atlas.labels_at_mm(np.array([[0, 0, 100], [100, 0, 0], [0, 110, 0]])).tolist() == [0, 0, 0]
    rng = np.random.default_rng(0)
    pts = rng.uniform([1, -90, -70], [70, 90, 70], size=(2000, 3))
    right = atlas.labels_at_mm(pts)
    left = atlas.labels_at_mm(pts * [-1, 1, 1])
    inside = right > 0
    assert inside.sum() > 500
    assert np.array_equal((right == 0), (left == 0))
    # the same structure, left label = right label - 10
    assert np.array_equal(left[inside], right[inside] - 10)
    assert {atlas.regions[v].structure for v in np.unique(right[inside])} == set(STRUCTURES)


def test_atlas_follows_the_affine_not_the_array_axes():
    """One head stored LPS and RAS: the RAS label volume is the LPS one flipped along i and j."""
    atlas = CoarseAtlas()
    lps = atlas.label_volume(SHAPE, AFFINES["LPS"])
    ras = atlas.label_volume(SHAPE, AFFINES["RAS"])
    assert np.array_equal(lps[::-1, ::-1, :], ras)
    # in the LPS grid, the high-i half is the patient's left
    sides = {atlas.regions[v].side for v in np.unique(lps[SHAPE[0] // 2 + 2:]) if v}
    assert sides == {"left"}


def test_user_label_map_roundtrip_matches_coarse_atlas(tmp_path):
    nii, names = write_coarse_atlas(tmp_path, shape=(80, 80, 52), affine=np.diag([-3.0, -3.0, 3.0, 1.0]))
    user = LabelMapAtlas.from_files(nii, names)
    assert user.regions[coarse_label("frontal lobe", "left")].side == "left"
    ijk = np.argwhere(np.ones(SHAPE, bool))[::7]
    want = CoarseAtlas().labels_at(ijk, SHAPE, AFFINES["RAS"])
    got = user.labels_at(ijk, SHAPE, AFFINES["RAS"])
    assert (want > 0).sum() > 1000
    assert np.mean(want == got) > 0.95  # nearest-neighbour resampling of a 3 mm raster


def test_names_table_errors_name_the_file(tmp_path):
    bad = tmp_path / "names.csv"
    bad.write_text("id,title\n1,left thing\n")
    with pytest.raises(ClinicalError, match="names.csv.*'label' and 'name'"):
        read_names_table(bad)
    bad.write_text("label,name\none,left thing\n")
    with pytest.raises(ClinicalError, match="names.csv:2.*not an integer"):
        read_names_table(bad)
    ok = tmp_path / "ok.tsv"
    ok.write_text("label\tname\n3\tright hippocampus\n")
    region = read_names_table(ok)[3]
    assert (region.side, region.structure) == ("right", "hippocampus")
    with pytest.raises(ClinicalError, match=r"labels \[5\].*no row"):
        LabelMapAtlas(np.full((4, 4, 4), 5), np.eye(4), read_names_table(ok))
