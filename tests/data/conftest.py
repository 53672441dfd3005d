"""Fixtures for the data tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def train_synth(train_cfg, tmp_path):
    """``train_synth(name, *overrides) -> (results, run_dir)``: one smoke epoch of ``data=<name>_synth``
    with the synthetic data written under ``tmp_path``."""
    from medseg.pipelines.train import train

    def run(name: str, *overrides: str):
        cfg, run_dir = train_cfg([f"data={name}_synth", "debug=smoke", f"paths.data_dir={tmp_path / 'data'}",
                                  *overrides])
        return train(cfg, run_dir), run_dir

    return run
