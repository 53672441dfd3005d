"""``medseg-synth <name>`` writes each dataset's real layout, readable by its reader; as a command
(subprocess) with its exit code and errors; and the documented synth-then-train flow."""

from __future__ import annotations

import math

import pytest

from medseg.cli.synth import main, synth_config, synth_datasets
from tests.conftest import SMOKE_LR, assert_beats_constant, run_cli


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


def test_command_writes_drive_and_refuses_an_unknown_dataset(tmp_path):
    from medseg.data.formats.drive import DriveReader

    out = tmp_path / "DRIVE"
    proc = run_cli("medseg.cli.synth", ["drive", "--out", str(out), "--n", "2", "--n-test", "1", "--size", "32", "32"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote synthetic drive to {out}"
    reader = DriveReader(out)
    assert len(reader.list_cases("training")) == 2 and len(reader.list_cases("test")) == 1
    bad = run_cli("medseg.cli.synth", ["retina", "--out", str(tmp_path / "r")], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[-1].startswith("medseg-synth: error: argument dataset: invalid choice: 'retina'")
    assert not (tmp_path / "r").exists()


def test_zero_cases_is_refused(tmp_path):
    proc = run_cli("medseg.cli.synth", ["drive", "--out", str(tmp_path / "D"), "--n", "0"], tmp_path)
    assert proc.returncode != 0 and "--n" in proc.stderr


def test_every_dataset_has_a_generator():
    assert set(synth_datasets()) == {"drive", "chase", "jsrt", "brats", "handbone", "folder", "nnunet", "decathlon", "dicom"}


# test AUC floor, measured on this run (0.744) with margin. The multi-label hand-bone run has no AUC and learns
# nothing measurable in one smoke epoch (Dice 0.004, at chance): it checks the flow and a finite score only
SYNTH_TRAIN_FLOOR = {"jsrt": 0.65}


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
                              "data.samples_per_epoch=8", "data.num_workers=0", SMOKE_LR, *overrides])
    assert cfg.data.synthesize is None
    results = train(cfg, run_dir)
    if name in SYNTH_TRAIN_FLOOR:
        assert_beats_constant(results, SYNTH_TRAIN_FLOOR[name])
    else:
        assert math.isfinite(results["test/dice"]), results


def test_defaults_come_from_the_synth_config(tmp_path):
    """Without --n the case count is conf/data/folder_synth.yaml's ``synthesize.n``."""
    from medseg.data.formats.folder import FolderReader

    n = int(synth_config("folder").n)
    assert main(["folder", "--out", str(tmp_path / "f"), "--size", "16", "16"]) == 0
    assert len(FolderReader(tmp_path / "f", classes=["round"]).list_cases("all")) == n


def test_key_value_overrides_reach_the_generator(tmp_path):
    args = ["--out", str(tmp_path / "d"), "--n", "1", "--n-test", "1", "--size", "24", "24"]
    assert main(["drive", *args]) == 0
    assert (tmp_path / "d" / "test" / "2nd_manual").is_dir()
    assert main(["drive", "--out", str(tmp_path / "d2"), *args[2:], "second_annotator=false"]) == 0
    assert not (tmp_path / "d2" / "test" / "2nd_manual").exists()


@pytest.mark.parametrize("args, message", [
    (["drive", "--out", "X", "annotator=2"], "'annotator=2': not a key=value argument of conf/data/drive_synth.yaml"),
    (["drive", "--out", "X", "--layout", "png"], "--layout: conf/data/drive_synth.yaml's generator"),
    (["drive", "--out", "X", "--size", "24"], "--size: conf/data/drive_synth.yaml takes H W"),
])
def test_bad_arguments_name_the_config(tmp_path, capsys, args, message):
    args = [a if a != "X" else str(tmp_path / "x") for a in args]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_data_config_without_synthesize_is_a_config_error(tmp_path, monkeypatch, capsys):
    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "train.yaml").write_text("{}\n")
    (conf / "data" / "plain_synth.yaml").write_text("root: somewhere\n")
    monkeypatch.setenv("MEDSEG_CONFIG_DIR", str(conf))
    with pytest.raises(SystemExit) as exc:
        main(["plain", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{conf / 'data' / 'plain_synth.yaml'}: has no 'synthesize:' node" in err
