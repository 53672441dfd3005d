"""Connected-component rules in 2D and 3D (connected-components-3d)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.errors import ConfigError
from medseg.inference import check_rules, describe_rule  # re-exported by the package
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


def test_check_rules_takes_the_forms_a_config_gives():
    assert check_rules("largest", ["a", "b"]) == [{"rule": "largest"}] * 2
    assert check_rules({"rule": "min_size", "min_size": 20}, ["a"]) == [{"rule": "min_size", "min_size": 20}]
    assert check_rules(["none", {"rule": "largest"}], ["a", "b"]) == [{"rule": "none"}, {"rule": "largest"}]
    assert describe_rule({"rule": "min_size", "min_size": 20}) == "remove components < 20 px"


@pytest.mark.parametrize("rules, message", [
    ("biggest", "class 'a': unknown rule"),
    ({"rule": "min_size"}, "class 'a': rule min_size needs a positive min_size"),
    ({"rule": "min_size", "min_size": -3}, "needs a positive min_size"),
    (["largest", "largest", "none"], "one rule for every class or one per class (2"),
    (7, "one rule for every class"),
])
def test_check_rules_refuses_bad_rules_naming_the_key(rules, message):
    with pytest.raises(ConfigError, match="^postprocessing: ") as err:
        check_rules(rules, ["a", "b"] if isinstance(rules, list) else ["a"])
    assert message in str(err.value)


def test_active_rules_are_empty_when_no_rule_changes_a_mask():
    from medseg.inference.postprocess import active_rules

    assert active_rules(None) == [] and active_rules([{"rule": "none"}, {"rule": "none"}]) == []
    mixed = [{"rule": "none"}, {"rule": "min_size", "min_size": 5}]
    assert active_rules(mixed) == mixed  # one per class, kept in order with the none ones
