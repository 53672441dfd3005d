"""medseg-plan adds the weight EMA only when the planned steps hold enough horizons of the decay that
``callbacks=ema`` ships with, and says which decay it used."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.cli._hydra import config_dir
from medseg.pipelines.plan import _averaging, ema_decay, ema_min_steps
from medseg.plan import rules


def test_min_steps_are_ten_horizons():
    assert ema_min_steps(0.99) == 1000 and ema_min_steps(0.995) == 2000 and ema_min_steps(0.9) == 100


def test_the_threshold_follows_the_shipped_decay(tmp_path):
    assert ema_decay(config_dir()) == pytest.approx(0.99)  # as conf/callbacks/ema.yaml ships
    conf = tmp_path / "conf"
    (conf / "callbacks").mkdir(parents=True)
    path = conf / "callbacks" / "ema.yaml"
    shipped = (Path(config_dir()) / "callbacks" / "ema.yaml").read_text()
    path.write_text(shipped.replace("decay: 0.99 ", "decay: 0.995"))
    decay = ema_decay(conf)
    assert decay == pytest.approx(0.995)

    short, long = rules.Plan(), rules.Plan()
    _averaging(short, 1500, decay)  # enough for decay 0.99, not for 0.995
    _averaging(long, 2500, decay)
    assert short.get("callbacks") == "default" and "fewer than 2000" in short.choices[0].reason
    assert "decay 0.995" in short.choices[0].reason
    assert long.get("callbacks") == "ema" and long.get("callbacks.model_checkpoint.monitor") is None
    assert "decay 0.995, a ~200-step horizon" in long.choices[0].reason
