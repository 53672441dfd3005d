"""``medseg-synth <name>`` writes each dataset's real layout, readable by its reader."""

from __future__ import annotations

import pytest

from medseg.cli.synth import GENERATORS, main


@pytest.mark.parametrize("name, args, reader_path, split", [
    ("drive", ["--n", "2", "--n-test", "1", "--size", "32", "32"], "medseg.data.formats.drive.DriveReader", "training"),
    ("chase", ["--n", "2", "--size", "32", "34"], "medseg.data.formats.chase.ChaseReader", "all"),
    ("jsrt", ["--n", "2", "--size", "32", "--layout", "scr"], "medseg.data.formats.jsrt.JSRTReader", "all"),
    ("brats", ["--n", "2", "--n-test", "1", "--size", "24", "24", "16"], "medseg.data.formats.brats.BratsReader",
     "training"),
    ("handbone", ["--n", "2", "--size", "48"], "medseg.data.formats.handbone.HandBoneReader", "train"),
    ("folder", ["--n", "2", "--size", "32", "32", "--task", "multiclass"], "medseg.data.formats.folder.FolderReader",
     "all"),
    ("nnunet", ["--n", "2", "--n-test", "1", "--size", "16", "16", "16", "--regions"],
     "medseg.data.formats.nnunet.NnunetReader", "training"),
    ("nnunet", ["--n", "2", "--size", "24", "24", "--ext", "png"], "medseg.data.formats.nnunet.NnunetReader",
     "training"),
    ("decathlon", ["--n", "2", "--size", "16", "16", "12"], "medseg.data.formats.decathlon.DecathlonReader",
     "training"),
    ("dicom", ["--n", "2", "--kind", "xray", "--size", "24", "24"], "medseg.data.formats.folder.FolderReader", "all"),
    ("brats", ["--n", "2", "--year", "2023", "--size", "24", "24", "16"], "medseg.data.formats.brats.BratsReader",
     "training"),
])
def test_synth_cli_writes_readable_layout(tmp_path, capsys, name, args, reader_path, split):
    import importlib

    out = tmp_path / name
    assert main([name, "--out", str(out), *args]) == 0
    assert f"wrote synthetic {name}" in capsys.readouterr().out
    module, cls = reader_path.rsplit(".", 1)
    kwargs = {"classes": ["round", "square", "diamond"], "task": "multiclass"} if name == "folder" else \
        {"classes": ["round"]} if name == "dicom" else {}
    reader = getattr(importlib.import_module(module), cls)(out, **kwargs)
    ids = reader.list_cases(split)
    assert len(ids) >= 2
    case = reader.load_case(ids[0])
    assert case.mask is not None and case.mask.any()


def test_every_dataset_has_a_generator():
    assert set(GENERATORS) == {"drive", "chase", "jsrt", "brats", "handbone", "folder", "nnunet", "decathlon", "dicom"}


@pytest.mark.parametrize("name, folder, synth_args, overrides", [
    ("jsrt", "JSRT", ["--n", "10", "--size", "64", "--layout", "png"], ["data.patch_size=[32,32]", "data.preprocess.0.size=[32,32]"]),
    ("handbone", "handbone", ["--n", "3", "--n-test", "1", "--size", "64"], ["data.preprocess.0.size=[64,64]", "data.patch_size=[32,32]",
                                                                        "data.cache_dir=null", "data.lazy=false"]),
])
def test_real_config_trains_after_synth(train_cfg, tmp_path, name, folder, synth_args, overrides):
    """The documented flow: ``medseg-synth <name> --out data/<Folder>`` then ``medseg-train data=<name>``."""
    from medseg.pipelines.train import train

    data_dir = tmp_path / "data"
    assert main([name, "--out", str(data_dir / folder), *synth_args]) == 0
    cfg, run_dir = train_cfg([f"data={name}", "debug=smoke", f"paths.data_dir={data_dir}",
                              "data.samples_per_epoch=8", "data.num_workers=0", *overrides])
    assert cfg.data.synthesize is None
    assert 0.0 <= train(cfg, run_dir)["test/dice"] <= 1.0
