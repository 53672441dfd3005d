"""Shared fixtures: tiny synthetic datasets and a Hydra config composer for in-process runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """trainer.precision=auto means bf16 on CPUs with AVX512-BF16/AMX and float32 elsewhere: the suite
    runs float32 everywhere, so its calibrated floors and export parity do not depend on the CI
    machine's CPU. The policy and bf16 training have their own tests (tests/utils/test_runtime.py,
    test_train_components). A hook, not an import side effect: benchmarks import compose_cfg from here
    and must see the real policy."""
    os.environ.setdefault("MEDSEG_PRECISION", "32-true")


SHARED_DRIVE = REPO.parent / "shared" / "data" / "DRIVE"


@pytest.fixture(scope="session")
def tiny_drive(tmp_path_factory) -> Path:
    """A DRIVE-layout dataset: 6 training + 2 test images of 64x64."""
    from medseg.data.synth.drive import write_drive

    return write_drive(tmp_path_factory.mktemp("drive") / "DRIVE", n_train=6, n_test=2, height=64, width=64, seed=3)


def compose_cfg(config_name: str, overrides: list[str], run_dir: Path):
    """Compose a config as the CLI would, with ``hydra.runtime.output_dir`` set to ``run_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from medseg.cli._hydra import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def train_cfg(tmp_path):
    """``train_cfg(overrides) -> (cfg, run_dir)`` for in-process pipeline calls."""

    def make(overrides: list[str] | None = None, run_dir: Path | None = None):
        rd = run_dir or tmp_path / "run"
        return compose_cfg("train", list(overrides or []), rd), rd

    return make


def run_cli(module: str, args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` as a user would; returns the completed process."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1", MEDSEG_ROOT=str(cwd))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# a smoke run's few optimiser steps move the ranking of pixels (AUC) long before a 0.5 threshold finds any
# vessel (its Dice is still 0, as is the all-background prediction's): tests that train check the AUC
SMOKE_LR = "optimizer.lr=0.01"


def assert_beats_constant(results: dict, floor: float) -> None:
    """The trained model's test AUC is above ``floor`` (calibrated from the test's own deterministic CPU
    run, with margin); a constant or all-background predictor scores 0.5 and its Dice is 0."""
    import math

    assert math.isfinite(results["test/dice"]), results
    assert "test/auc" in results, f"no test AUC for this task: {sorted(results)}"
    assert results["test/auc"] >= floor, f"test AUC {results['test/auc']:.4f} < {floor} (constant predictor: 0.5)"
