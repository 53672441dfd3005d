"""Every conf/model/*.yaml instantiates with its default (full-size) settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from medseg.cli._hydra import config_dir

MODELS = sorted(p.stem for p in Path(config_dir(), "model").glob("*.yaml"))
VOLUME_MODELS = {"unet3d", "segresnet", "unetr", "swinunetr"}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_default_model_config_instantiates(name):
    overrides = [f"model={name}"] + (["data.patch_size=[64,64,64]"] if name in VOLUME_MODELS else [])
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    net = instantiate(cfg.model, in_channels=3, out_channels=2)
    assert sum(p.numel() for p in net.parameters()) > 1e6
    assert getattr(net, "size_divisor", 1) >= 1


@pytest.mark.parametrize("debug", [[], ["debug=smoke"]])
def test_unet_valid_config_sets_a_patch_the_valid_net_accepts(debug):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["model=unet_valid", *debug])
    net = instantiate(cfg.model, in_channels=3, out_channels=1)
    assert net.padding == "valid"
    out = [net.output_size(int(s)) for s in cfg.data.patch_size]
    assert all(o is not None and 0 < o < s for o, s in zip(out, cfg.data.patch_size))
