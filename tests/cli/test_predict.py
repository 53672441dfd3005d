"""``medseg-predict`` as a user runs it on a finished ``medseg-train`` run (tests/cli/conftest.py): the test
split's masks, probabilities and index agree with each other; a missing input folder is a clear error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.cli.conftest import assert_one_line_error
from tests.conftest import run_cli


def test_predict_the_test_split(finished_run, tmp_path):
    run_dir, _ = finished_run
    out = tmp_path / "p"
    proc = run_cli("medseg.cli.predict", [f"run_dir={run_dir}", "split=test", "save_probs=true",
                                          f"hydra.run.dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"2 predictions written to {out}" in proc.stdout
    table = pd.read_csv(out / "predictions.csv", index_col=0)
    assert list(table.index) == json.loads((run_dir / "splits.json").read_text())["test"]
    threshold = json.loads((run_dir / "results.json").read_text())["threshold"]
    for case, row in table.iterrows():
        assert row["files"].split(";") == [f"masks/{case}.png", f"probs/{case}.npy"]
        mask = np.asarray(Image.open(out / "masks" / f"{case}.png"))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
        assert abs(row["fraction_vessel"] - (mask == 255).mean()) < 1e-6
        probs = np.load(out / "probs" / f"{case}.npy").astype(np.float32)
        assert probs.shape == (1, 64, 64)
        clear = np.abs(probs[0] - threshold) > 2e-3  # the saved probabilities are float16
        assert clear.mean() > 0.9 and np.array_equal((mask == 255)[clear], (probs[0] > threshold)[clear])
        assert (mask == 255).any()  # this run finds vessels (its test Dice is above the all-background 0)


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_missing_input_folder(finished_run, tmp_path):
    run_dir, _ = finished_run
    missing = tmp_path / "none"
    proc = run_cli("medseg.cli.predict", [f"run_dir={run_dir}", f"input_dir={missing}",
                                          f"hydra.run.dir={tmp_path / 'p'}"], tmp_path)
    assert_one_line_error(proc, "medseg-predict", 3, f"{missing}: input folder not found")
