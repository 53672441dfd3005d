"""A tiny 2-fold cross-validation, run once per session and shared by the k-fold, ensemble and report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import compose_cfg


def kfold_cfg(run_dir: Path, data_root: Path, folds: int = 2, extra=()):
    return compose_cfg("kfold", ["debug=smoke", f"data.root={data_root}", f"folds={folds}",
                                 "metrics=[hd95]", *extra], run_dir)


@pytest.fixture(scope="session")
def kfold_dir(tmp_path_factory, tiny_drive) -> Path:
    from medseg.pipelines.kfold import run_kfold

    out = tmp_path_factory.mktemp("kfold") / "cv"
    run_kfold(kfold_cfg(out, tiny_drive), out)
    return out
