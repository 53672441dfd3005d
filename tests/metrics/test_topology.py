"""clDice and Betti-number errors against values computed by hand on small masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.metrics.topology import (
    betti_errors,
    betti_numbers,
    cldice,
    cldice_terms,
    skeleton,
    topology_metrics,
)


def ring2d(n: int = 16) -> np.ndarray:
    m = np.zeros((n, n), bool)
    m[3:13, 3:13] = True
    m[6:10, 6:10] = False
    return m


def hline(n: int = 32, row: int = 10, start: int = 4, stop: int = 28) -> np.ndarray:
    m = np.zeros((n, n), bool)
    m[row, start:stop] = True
    return m


def test_ring_has_one_component_and_one_loop():
    assert betti_numbers(ring2d()) == (1, 1)
    two = np.zeros((16, 32), bool)
    two[:, :16], two[:, 16:] = ring2d(), ring2d()
    assert betti_numbers(two) == (2, 2)
    solid = np.zeros((16, 16), bool)
    solid[3:13, 3:13] = True
    assert betti_numbers(solid) == (1, 0)
    assert betti_numbers(np.zeros((8, 8), bool)) == (0, 0)


def test_connectivity_pair_is_8_foreground_4_background():
    diamond = np.zeros((5, 5), bool)
    diamond[[1, 2, 2, 3], [2, 1, 3, 2]] = True  # touching only diagonally
    # 8-connected: one component; the centre pixel is 4-connected background enclosed by it: one hole
    assert betti_numbers(diamond) == (1, 1)
    diag = np.eye(6, dtype=bool)
    assert betti_numbers(diag) == (1, 0)


def test_hole_open_to_the_outside_of_the_roi_is_not_a_loop():
    m = ring2d()
    roi = np.ones_like(m)
    roi[:, :8] = False  # the ring is cut by the field of view: two arcs, no enclosed background
    assert betti_numbers(m, roi=roi) == (1, 0)
    roi2 = np.ones_like(m)
    roi2[0, 0] = False  # outside of the FOV far away from the ring: the hole stays enclosed
    assert betti_numbers(m, roi=roi2) == (1, 1)


def test_broken_line_raises_betti0_error_by_one():
    target = hline()[None]
    pred = target.copy()
    pred[0, 10, 15:17] = False
    err = betti_errors(pred, target)
    assert err["betti0_error"].tolist() == [1.0]
    assert err["betti1_error"].tolist() == [0.0]
    pred[0, 10, 22] = False  # a second break
    assert betti_errors(pred, target)["betti0_error"].tolist() == [2.0]


def test_filled_ring_has_betti1_error_one_per_class():
    target = np.stack([ring2d(), ring2d()])
    pred = target.copy()
    pred[1, 6:10, 6:10] = True  # class 1: the loop is filled in
    err = betti_errors(pred, target)
    assert err["betti0_error"].tolist() == [0.0, 0.0]
    assert err["betti1_error"].tolist() == [0.0, 1.0]


def test_3d_betti_numbers_from_the_euler_characteristic():
    cube = np.zeros((16, 16, 16), bool)
    cube[4:12, 4:12, 4:12] = True
    assert betti_numbers(cube) == (1, 0)
    hollow = cube.copy()
    hollow[6:10, 6:10, 6:10] = False  # a cavity (b2 = 1), no loop
    assert betti_numbers(hollow) == (1, 0)
    tunnel = cube.copy()
    tunnel[:, 6:10, 6:10] = False  # a solid torus
    assert betti_numbers(tunnel) == (1, 1)
    two = cube.copy()
    two[:, 5:7, 5:7] = False
    two[:, 9:11, 9:11] = False
    assert betti_numbers(two) == (1, 2)
    err = betti_errors(np.stack([cube]), np.stack([two]))
    assert err["betti1_error"].tolist() == [2.0]


def test_cldice_of_identical_masks_is_one():
    target = np.stack([ring2d(), np.pad(hline(16, 5, 2, 14), 0)])
    assert cldice(target, target).tolist() == [1.0, 1.0]
    vol = np.zeros((1, 12, 12, 12), bool)
    vol[0, 2:10, 5:8, 5:8] = True
    assert cldice(vol, vol).tolist() == [1.0]
    bar = np.zeros((12, 12, 12), bool)
    bar[2:10, 5:7, 5:7] = True  # skimage's 3D thinning erases this bar: it is its own skeleton
    np.testing.assert_array_equal(skeleton(bar), bar)
    assert cldice(bar[None], bar[None]).tolist() == [1.0]


def test_half_the_skeleton_missed_gives_tsens_one_half():
    target = hline(32, 10, 4, 24)  # 20 pixels, 1 pixel thick: its own skeleton
    np.testing.assert_array_equal(skeleton(target), target)
    pred = np.zeros_like(target)
    pred[10, 4:14] = True  # the first 10 skeleton pixels only
    tprec, tsens = cldice_terms(pred, target)
    assert tsens == 0.5
    assert tprec == 1.0  # pred is its own skeleton and lies inside the target
    thick = np.zeros_like(target)
    thick[9:12, 4:14] = True  # a thicker prediction over the same half: Tsens is still exactly 1/2
    assert cldice_terms(thick, target)[1] == 0.5
    assert cldice(pred[None], target[None])[0] == pytest.approx(2 * 0.5 / 1.5, abs=1e-12)


def test_empty_conventions_and_torch_inputs():
    empty = np.zeros((1, 8, 8), bool)
    line = hline(8, 3, 1, 7)[None]
    assert cldice(empty, empty).tolist() == [1.0]
    assert cldice(line, empty).tolist() == [0.0]
    assert cldice(empty, line).tolist() == [0.0]
    far = np.zeros_like(line)
    far[0, 6, 1:7] = True  # disjoint: Tprec = Tsens = 0
    assert cldice(far, line).tolist() == [0.0]
    out = topology_metrics(torch.from_numpy(far), torch.from_numpy(line))
    assert set(out) == {"cldice", "betti0_error", "betti1_error"}
    assert all(v.shape == (1,) for v in out.values())


def test_roi_masks_both_maps_and_shapes_are_checked():
    target = hline()[None]
    pred = target.copy()
    pred[0, 10, 15:17] = False
    roi = np.ones((32, 32), bool)
    roi[:, 14:] = False  # the break lies outside the ROI: both maps are the same inside it
    assert betti_errors(pred, target, roi=roi)["betti0_error"].tolist() == [0.0]
    assert cldice(pred, target, roi=roi).tolist() == [1.0]
    with pytest.raises(ValueError, match="shape"):
        cldice(pred, target[:, :16])
    with pytest.raises(ValueError, match="roi shape"):
        betti_errors(pred, target, roi=roi[:16])
