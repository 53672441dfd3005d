"""Synthetic MNI-derived heads: the tumour lands at its MNI coordinate through any placement and header."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.data.synth.brats import TRAIN_DIR, brats_affine, write_brats
from medseg.data.synth.head import centred_world_from_mni, mni_head, mni_template, random_world_from_mni


def test_tumour_sits_at_its_mni_point_through_a_random_placement():
    shape = (96, 96, 62)                       # 2.5 mm over the SRI24 box
    affine = brats_affine(shape) @ np.diag([2.5, 2.5, 2.5, 1.0])
    affine[1, 3] = 239.0
    place = random_world_from_mni(np.random.default_rng(3), shape, affine)
    centre = np.array([-38.0, -20.0, 55.0])
    vols, seg, brain = mni_head(np.random.default_rng(0), shape, affine, place, [(centre, 8.0)])
    assert set(vols) == {"flair", "t1", "t1ce", "t2"} and set(np.unique(seg)) == {0, 1, 2, 4}
    # the enhancing+necrotic core's centroid, carried back to MNI by the known placement
    ijk = np.argwhere(np.isin(seg, (1, 4))).mean(axis=0)
    world = affine[:3, :3] @ ijk + affine[:3, 3]
    back = np.linalg.solve(place[:3, :3], world - place[:3, 3])
    assert np.linalg.norm(back - centre) < 3.0
    # brain volume = template brain volume x the placement's determinant
    tmpl, t_aff = mni_template()
    expected = (tmpl > 0).sum() * abs(np.linalg.det(place[:3, :3]))
    assert brain.sum() * 2.5 ** 3 == pytest.approx(expected, rel=0.03)
    assert not (seg[~brain] > 0).any() and (vols["t1"][~brain] == 0).all()
    # contrasts: tumour bright on FLAIR, enhancing rim bright on T1ce, CSF-like dark on T1 inside the brain
    assert vols["flair"][seg == 2].mean() > 1.3 * vols["flair"][brain & (seg == 0)].mean()
    assert vols["t1ce"][seg == 4].mean() > 1.3 * vols["t1ce"][brain & (seg == 0)].mean()


def test_write_brats_mni_records_header_and_placement(tmp_path):
    shape = (60, 60, 39)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])      # RAS-stored, 4 mm
    affine[:3, 3] = (-118.0, -118.0, -10.0)
    root = write_brats(tmp_path, n_cases=2, shape=shape, head="mni", affine=affine,
                       tumours_mni=[[((30.0, -85.0, 5.0), 8.0)]])
    marker = json.loads((root / ".medseg_synthetic.json").read_text())
    assert marker["head"] == "mni" and np.allclose(marker["affine"], affine)
    assert np.allclose(marker["cases"][0]["world_from_mni"], centred_world_from_mni(shape, affine))
    assert marker["cases"][1]["tumours_mni"] == []
    img = nib.load(root / TRAIN_DIR / "BraTS20_Training_001" / "BraTS20_Training_001_seg.nii.gz")
    assert np.allclose(img.affine, affine) and nib.aff2axcodes(img.affine) == ("R", "A", "S")
    assert np.allclose(img.header.get_zooms()[:3], 4.0)
    seg2 = np.asarray(nib.load(root / TRAIN_DIR / "BraTS20_Training_002" / "BraTS20_Training_002_seg.nii.gz").dataobj)
    assert seg2.max() == 0  # no tumour listed for case 2
    with pytest.raises(ValueError, match="need head='mni'"):
        write_brats(tmp_path / "x", n_cases=1, shape=shape, affine=affine)
