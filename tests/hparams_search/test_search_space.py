"""Hydra sweep grammar -> Optuna distributions, and sampled values back to overrides."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from medseg.hparams_search.search_space import format_value, parse_search_space, trial_overrides


@pytest.fixture
def parser():
    return OverridesParser.create()


def test_each_sweep_kind_maps_to_its_distribution(parser):
    space, fixed = parse_search_space(parser, {
        "optimizer.lr": "tag(log, interval(1e-4, 1e-2))",
        "loss.terms.bce.weight": "interval(0.0, 2.0)",
        "model.depth": "tag(int, interval(2, 5))",
        "data.batch_size": "tag(log, int, interval(2, 32))",
        "model.base_channels": "range(16, 64, 16)",
        "model": "choice(unet, smp)",
    }, ["trainer.max_epochs=3"])
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["loss.terms.bce.weight"] == FloatDistribution(0.0, 2.0)
    assert space["model.depth"] == IntDistribution(2, 5)
    assert space["data.batch_size"] == IntDistribution(2, 32, log=True)
    # Hydra's range() excludes its end, like Python's: 16, 32, 48
    assert space["model.base_channels"] == IntDistribution(16, 48, step=16)
    assert space["model"] == CategoricalDistribution(["unet", "smp"])
    assert fixed == ["trainer.max_epochs=3"]


def test_command_line_replaces_config_params(parser):
    space, fixed = parse_search_space(parser, {"optimizer.lr": "interval(0.1, 0.2)"},
                                      ["optimizer.lr=choice(0.5, 0.7)", "+x.y='sqlite:///a b'"])
    assert space == {"optimizer.lr": CategoricalDistribution([0.5, 0.7])}
    assert fixed == ["+x.y='sqlite:///a b'"]


@pytest.mark.parametrize("bad", ["interval(2.0, 1.0)", "range(5, 5)"])
def test_empty_ranges_are_rejected(parser, bad):
    with pytest.raises(ValueError, match="optimizer.lr"):
        parse_search_space(parser, {"optimizer.lr": bad}, [])


def test_sampled_values_round_trip_through_the_parser(parser):
    params = {"a": 1e-05, "b": 3, "c": "resnet34", "d": True, "e": None}
    lines = trial_overrides(params)
    parsed = {o.key_or_group: o.value() for o in parser.parse_overrides(lines)}
    assert parsed == params
    assert format_value(0.1) == "0.1"
