"""Localisation of a synthetic BraTS case placed in a known lobe and hemisphere, LPS and RAS stored."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.apps.clinical import ClinicalError
from medseg.apps.clinical.localise import localise, regions_from_labels
from medseg.apps.clinical.regions import CoarseAtlas
from medseg.apps.clinical.segment import read_segmentation
from tests.apps.clinical.clinical_synth import VOXEL


@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
@pytest.mark.parametrize("centre_mm, structure, side", [
    ((-35.0, 40.0, 30.0), "frontal lobe", "left"),
    ((25.0, -64.0, 12.0), "occipital lobe", "right"),
    ((46.0, 0.0, -20.0), "temporal lobe", "right"),
    ((-30.0, -56.0, -48.0), "cerebellum", "left"),
])
def test_localisation_names_the_lobe_and_hemisphere(brats_case, orientation, centre_mm, structure, side):
    case = brats_case(centre_mm=centre_mm, orientation=orientation, radius_vox=2.5)
    seg_path = case / f"{case.name}_seg.nii.gz"
    assert nib.aff2axcodes(nib.load(seg_path).affine) == tuple(orientation)
    tumour, affine = read_segmentation(seg_path)
    loc = localise(tumour, affine, CoarseAtlas())
    top = loc.found[0]
    assert (top.structure, top.side) == (structure, side)
    assert loc.hemisphere == side
    assert top.fraction > 0.5
    assert sum(r.fraction for r in loc.regions) + loc.outside_fraction == pytest.approx(1.0, abs=1e-3)


def test_volumes_come_from_the_voxel_spacing(brats_case):
    case = brats_case()
    seg = np.asarray(nib.load(case / f"{case.name}_seg.nii.gz").dataobj)
    loc = localise(*read_segmentation(case / f"{case.name}_seg.nii.gz"), CoarseAtlas())
    voxel_cm3 = VOXEL ** 3 / 1000
    assert loc.volumes_cm3["WT"] == pytest.approx(np.count_nonzero(seg) * voxel_cm3)
    assert loc.volumes_cm3["TC"] == pytest.approx(np.count_nonzero(np.isin(seg, [1, 4])) * voxel_cm3)
    assert loc.volumes_cm3["ET"] == pytest.approx(np.count_nonzero(seg == 4) * voxel_cm3)
    assert 0 < loc.volumes_cm3["ET"] < loc.volumes_cm3["TC"] < loc.volumes_cm3["WT"]


def test_midline_tumour_is_bilateral(brats_case):
    case = brats_case(centre_mm=(0.0, 30.0, 40.0), radius_vox=3)
    loc = localise(*read_segmentation(case / f"{case.name}_seg.nii.gz"), CoarseAtlas())
    assert loc.hemisphere == "bilateral"
    assert {r.side for r in loc.found} == {"left", "right"}


def test_empty_segmentation_and_bad_labels_are_clear_errors(brats_case):
    case = brats_case(empty=True)
    tumour, affine = read_segmentation(case / f"{case.name}_seg.nii.gz")
    with pytest.raises(ClinicalError, match="contains no tumour"):
        localise(tumour, affine, CoarseAtlas(), source="case X")
    with pytest.raises(ClinicalError, match=r"labels \[7\]"):
        regions_from_labels(np.array([[[0, 7]]]))


def test_full_size_brats_grid_with_the_distributed_header(tmp_path):
    """240 x 240 x 155 at 1 mm with the BraTS header affine diag(-1, -1, 1): i grows to the patient's
    left, j to the back. A tumour at high i, low j, high k is left, anterior, superior: left frontal."""
    from medseg.apps.clinical.regions import SRI24_AFFINE, SRI24_SHAPE

    seg = np.zeros(SRI24_SHAPE, np.uint8)
    seg[150:166, 62:78, 100:116] = 2
    seg[154:162, 66:74, 104:112] = 4
    path = tmp_path / "BraTS20_Training_001_seg.nii.gz"
    nib.save(nib.Nifti1Image(seg, SRI24_AFFINE), str(path))
    tumour, affine = read_segmentation(path)
    loc = localise(tumour, affine, CoarseAtlas())
    assert loc.axcodes == ("L", "P", "S")
    assert (loc.found[0].name, loc.hemisphere) == ("left frontal lobe", "left")
    assert loc.volumes_cm3["WT"] == pytest.approx(16 ** 3 / 1000)
    # the same array with the x axis flipped in the header: now the tumour is on the right
    flipped = SRI24_AFFINE @ np.diag([-1.0, 1, 1, 1])
    flipped[0, 3] = -239.0
    loc_r = localise(tumour, flipped, CoarseAtlas())
    assert (loc_r.found[0].name, loc_r.hemisphere) == ("right frontal lobe", "right")
