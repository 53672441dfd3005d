"""End-to-end: ``medseg-kfold`` writes OOF records, ``medseg-select`` chooses a pipeline from them
with the test labels deleted, ``medseg-predict`` applies the written config; mismatched splits refuse."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import compose_cfg, run_cli


@pytest.fixture(scope="module")
def kfold_copy(tiny_drive, tmp_path_factory):
    from medseg.pipelines.kfold import run_kfold

    root = tmp_path_factory.mktemp("select")
    data = root / "DRIVE"
    shutil.copytree(tiny_drive, data)
    out = root / "cv"
    run_kfold(compose_cfg("kfold", ["debug=smoke", "data=drive", f"data.root={data}", "folds=2", "metrics=[]",
                                    "trainer.max_epochs=2", "optimizer.lr=0.01"], out), out)
    return root, data, out


def test_select_from_oof_without_test_labels_then_predict_applies_it(kfold_copy):
    root, data, cv = kfold_copy
    records = sorted(cv.glob("fold_*/oof/cases/*.npz"))
    assert len(records) == 6  # every training-pool case once
    size = sum(p.stat().st_size for p in records)
    assert size < 6 * 64 * 64 * 2  # compressed: below the raw float16 maps
    shutil.rmtree(data / "test" / "1st_manual")  # selection must not need (or read) any test label

    sel = root / "sel"
    proc = run_cli("medseg.cli.select", [str(cv), f"hydra.run.dir={sel}", "n_boot=200"], root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    spec = json.loads((sel / "selection.json").read_text())
    assert [s["step"] for s in spec["steps"]] == ["single", "temperature", "thresholds", "postprocessing"]
    assert spec["oof"]["cases"] == 6 and spec["members"][0]["path"] == str(cv.resolve())
    assert spec["temperature"] > 0 and len(spec["thresholds"]) == 1 and len(spec["postprocessing"]) == 1
    final = spec["steps"][-1]["oof_dice"]
    assert final >= spec["steps"][0]["oof_dice"] - 1e-9  # no step is kept that lowers OOF Dice
    for name in ("report.md", "report.html", "figures/reliability.png", "selected.yaml", "leaderboard.csv"):
        assert (sel / name).is_file(), name
    assert len(list((sel / "figures").glob("worst_*.png"))) == 1
    assert "medseg-predict --config-dir" in proc.stdout

    out = root / "pred"
    proc = run_cli("medseg.cli.predict", ["--config-dir", str(sel), "--config-name", "selected",
                                          f"input_dir={data / 'test' / 'images'}", "save_uncertainty=true",
                                          f"hydra.run.dir={out}"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((out / "masks").glob("*.png"))) == 2
    import numpy as np

    with np.load(sorted((out / "uncertainty").glob("*.npz"))[0]) as u:
        assert u["entropy"].shape == (64, 64) and float(u["entropy"].max()) > 0
        assert u["disagreement"].shape == (64, 64)  # the two folds' disagreement


def test_select_refuses_runs_on_different_splits(kfold_copy):
    root, _, cv = kfold_copy
    other = root / "cv_other"
    shutil.copytree(cv, other)
    moved = sorted((other / "fold_0" / "oof" / "cases").glob("*.npz"))[0]
    moved.rename(other / "fold_1" / "oof" / "cases" / moved.name)  # that case now sits in another fold
    proc = run_cli("medseg.cli.select", [str(cv), str(other), f"hydra.run.dir={root / 'sel2'}"], root)
    assert proc.returncode == 3
    assert str(cv) in proc.stderr and str(other) in proc.stderr and "different splits" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_positional_folders_become_the_runs_override():
    from medseg.cli.select import positional_runs

    assert positional_runs(["a/b", "n_boot=10", "-cd", "confdir", "c d"]) == \
        ["n_boot=10", "-cd", "confdir", "runs=['a/b','c d']"]
    assert positional_runs(["runs=[x]"]) == ["runs=[x]"]


def test_a_broken_selection_file_is_a_config_error(tmp_path):
    from medseg.errors import ConfigError
    from medseg.inference.selected import Selection

    bad = tmp_path / "selection.json"
    bad.write_text('{"task": {"kind": "binary"}}')
    with pytest.raises(ConfigError, match="selection.json"):
        Selection.load(bad)
