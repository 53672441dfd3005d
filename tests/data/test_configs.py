"""Every dataset has a real-data config and a ``_synth`` variant, and each composes into a DataModule."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from medseg.cli._hydra import config_dir

DATASETS = ["drive", "chase", "jsrt", "brats", "handbone", "folder", "nnunet", "decathlon", "dicom"]


@pytest.mark.parametrize("name", DATASETS)
def test_real_and_synth_configs(train_cfg, tmp_path, name):
    assert (Path(config_dir()) / "data" / f"{name}.yaml").is_file()
    real, _ = train_cfg([f"data={name}", f"paths.data_dir={tmp_path}"], run_dir=tmp_path / "r1")
    synth, _ = train_cfg([f"data={name}_synth", f"paths.data_dir={tmp_path}"], run_dir=tmp_path / "r2")
    assert real.data.synthesize is None and synth.data.synthesize is not None
    assert str(synth.data.root).startswith(str(tmp_path / "synthetic"))
    dm = instantiate(synth.data, _convert_="partial")
    assert dm.root == Path(synth.data.root)
    reader_cls = synth.data.reader["_target_"]
    assert reader_cls.startswith("medseg.data.formats.") and real.data.reader["_target_"] == reader_cls


@pytest.mark.parametrize("name", DATASETS)
def test_split_and_resampling_options_need_no_plus(train_cfg, tmp_path, name):
    """``data.splits``, ``data.val_split``, ``data.fov``, ``data.max_size`` and ``data.spacing`` are in
    every data config, so they are set without a leading ``+``."""
    cfg, _ = train_cfg([f"data={name}", f"paths.data_dir={tmp_path}", "data.splits=/x/splits.json",
                        "data.fov=auto", "data.max_size=256", "data.spacing=[1,1,1]", "data.val_split=val"],
                       run_dir=tmp_path / "r")
    assert cfg.data.splits == "/x/splits.json" and cfg.data.max_size == 256 and cfg.data.fov == "auto"
