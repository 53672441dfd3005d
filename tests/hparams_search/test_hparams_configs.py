"""The shipped search spaces compose and parse into Optuna distributions."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from medseg.cli._hydra import config_dir
from medseg.hparams_search.search_space import parse_search_space


@pytest.mark.parametrize("name, needs", [("vessels_optuna", []), ("vessels_quick", []),
                                         ("handbone_optuna", ["data/handbone_synth.yaml", "model/smp.yaml"])])
def test_search_space_composes_and_parses(train_cfg, name, needs):
    from pathlib import Path

    missing = [n for n in needs if not (Path(config_dir()) / n).is_file()]
    # a shipped search space naming a config that is not shipped is a bug, not a skip
    assert not missing, f"hparams_search={name} needs configs that do not exist: {missing}"
    cfg, _ = train_cfg([f"hparams_search={name}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.startswith("hydra_plugins.medseg_optuna_sweeper")
    assert cfg.optimized_metric == "val/best_dice" and cfg.evaluate is False
    params = OmegaConf.to_container(sweeper.params)
    space, fixed = parse_search_space(OverridesParser.create(), params, [])
    assert set(space) == set(params) and not fixed
    for key in space:  # every searched key exists in the composed config (no typo'd parameter)
        assert OmegaConf.select(cfg, key, default="__missing__") != "__missing__", key
