"""``inference_spec``: each ``conf/inference`` inferer becomes the manifest's plain ``inference`` block,
the same block the mode-string ``Predictor`` config gave (old runs export the same package)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from medseg.errors import ConfigError
from medseg.export.package import inference_spec

CONF = Path(__file__).resolve().parents[2] / "conf" / "inference"


def _group(name: str):
    run = OmegaConf.create({"data": {"patch_size": [48, 40], "resize": [64, 64]},
                            "inference": OmegaConf.load(CONF / f"{name}.yaml")})
    return run.inference


@pytest.mark.parametrize("name, legacy, expected", [
    ("sliding_window", {"mode": "sliding_window", "roi_size": [48, 40], "sw_batch_size": 32},
     {"mode": "sliding_window", "size_divisor": 16, "roi_size": [48, 40], "overlap": 0.25, "sw_batch_size": 32,
      "blend": "gaussian", "sigma_scale": 0.125}),
    ("whole", {"mode": "whole"}, {"mode": "whole", "size_divisor": 16}),
    ("resize", {"mode": "resize", "resize_to": [64, 64]}, {"mode": "resize", "size_divisor": 16, "resize_to": [64, 64]}),
])
def test_spec_of_each_inferer(name, legacy, expected):
    assert inference_spec(_group(name), 16) == expected
    old = OmegaConf.create({"_target_": "medseg.inference.predictor.Predictor", **legacy})
    assert inference_spec(old, 16) == expected


def test_spec_of_explicit_divisor_and_simple_inferer():
    explicit = OmegaConf.create({"_target_": "medseg.inference.inferers.PadToMultipleInferer", "size_divisor": 8})
    assert inference_spec(explicit, 32) == {"mode": "whole", "size_divisor": 8}
    assert inference_spec(OmegaConf.load(CONF / "simple.yaml"), 32) == {"mode": "whole", "size_divisor": 1}


@pytest.mark.parametrize("change, match", [
    ({"padding_mode": "reflect"}, "padding_mode"),
    ({"mode": "bogus"}, "cannot be built"),
    ({"overlap": [0.25, 0.5]}, "inference.overlap"),
])
def test_spec_refuses_what_the_runner_cannot_reproduce(change, match):
    cfg = _group("sliding_window")
    for key, value in change.items():
        cfg[key] = value
    with pytest.raises(ConfigError, match=match):
        inference_spec(cfg, 16)


def test_spec_refuses_a_non_inferer():
    with pytest.raises(ConfigError, match="can be exported"):
        inference_spec(OmegaConf.create({"_target_": "torch.nn.Identity"}), 16)
