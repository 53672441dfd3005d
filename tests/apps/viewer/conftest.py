"""Tiny real runs for the viewer tests, made once per session with ``medseg-train debug=smoke``:
two 2D multi-label hand-bone runs on the same synthetic data (same split, different learning rate,
so they can be compared case by case) and one 3D BraTS run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

HANDBONE = ["data=handbone_synth", "data.synthesize.size=64", "data.synthesize.n_train=5", "data.synthesize.n_test=1",
            "data.patch_size=[32,32]", "data.samples_per_epoch=8", "trainer.max_epochs=2"]
BRATS = ["data=brats_synth", "data.synthesize.shape=[36,40,28]", "data.synthesize.n_cases=6",
         "data.patch_size=[16,16,16]", "data.samples_per_epoch=4", "data.batch_size=2", "model.depth=2",
         "model.base_channels=4", "trainer.max_epochs=2"]


def _train(cwd: Path, name: str, overrides: list[str]) -> Path:
    run = cwd / name
    proc = run_cli("medseg.cli.train", ["debug=smoke", f"paths.data_dir={cwd / 'data'}", f"hydra.run.dir={run}",
                                        *overrides], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def viewer_runs(tmp_path_factory) -> dict[str, Path]:
    cwd = tmp_path_factory.mktemp("viewer")
    return {"hand_a": _train(cwd, "hand_a", HANDBONE),
            "hand_b": _train(cwd, "hand_b", [*HANDBONE, "optimizer.lr=0.01"]),
            "brats": _train(cwd, "brats", BRATS),
            "data": cwd / "data"}
