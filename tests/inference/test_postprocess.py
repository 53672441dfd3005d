"""Connected-component rules in 2D and 3D (connected-components-3d)."""

from __future__ import annotations

import numpy as np
import torch

from medseg.inference.postprocess import component_sizes, keep_largest, postprocess, remove_small


def test_2d_rules_use_8_connectivity():
    m = np.zeros((10, 10), bool)
    m[1:5, 1:5] = True   # 16
    m[5, 5] = True       # touches the block diagonally: same component (8-connectivity)
    m[8, 8] = True       # 1 px alone
    assert sorted(component_sizes(m)) == [1, 17]
    assert keep_largest(m).sum() == 17 and not keep_largest(m)[8, 8]
    assert remove_small(m, 2).sum() == 17


def test_3d_rules_and_per_class_dispatch():
    v = np.zeros((2, 6, 6, 6), bool)
    v[0, :3, :3, :3] = True
    v[0, 5, 5, 5] = True
    v[1, 4:, 4:, 4:] = True
    out = postprocess(torch.from_numpy(v), [{"rule": "largest"}, {"rule": "none"}])
    assert isinstance(out, torch.Tensor) and out[0].sum() == 27 and torch.equal(out[1], torch.from_numpy(v[1]))
    # min_size in full-resolution voxels, on a map stored 8x smaller in volume
    half = postprocess(v, [{"rule": "min_size", "min_size": 16}, {"rule": "none"}], area_scale=8.0)
    assert half[0].sum() == 27  # 16 / 8 = 2 voxels: the single voxel goes, the cube stays
