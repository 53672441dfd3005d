"""Run folders for the export tests, built straight from a composed config (no training): the
network gets seeded random weights, with the output layer scaled up so that probabilities spread
over (0, 1) instead of sitting at 0.5 (a mask comparison then tests something)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from tests.conftest import compose_cfg


def make_run(run_dir: Path, overrides: list[str], seed: int = 0, gain: float = 8.0,
             in_channels: int | None = None) -> Path:
    from medseg.pipelines.build import build_module
    from medseg.pipelines.predict import _reader_info

    cfg = compose_cfg("train", ["debug=smoke", *overrides], run_dir)
    with open_dict(cfg):
        cfg.pop("hydra")
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.root_dir = str(run_dir.parent)
    OmegaConf.resolve(cfg)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    torch.manual_seed(seed)
    info = _reader_info(cfg)  # the reader's class defaults: the data root does not exist
    if in_channels is not None:
        info.in_channels = in_channels
    module = build_module(cfg, info)
    last = [m for m in module.net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))][-1]
    with torch.no_grad():
        last.weight.mul_(gain)
        if last.bias is not None:
            last.bias.uniform_(-1.0, 1.0)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    torch.save({"state_dict": module.state_dict()}, run_dir / "checkpoints" / "best-epoch000.ckpt")
    (run_dir / "results.json").write_text("{}")
    return run_dir


@pytest.fixture(scope="session")
def run_factory(tmp_path_factory):
    made: dict[str, Path] = {}

    def get(name: str, overrides: list[str], seed: int = 0, in_channels: int | None = None) -> Path:
        if name not in made:
            made[name] = make_run(tmp_path_factory.mktemp(name) / "run", overrides, seed, in_channels=in_channels)
        return made[name]

    return get
