"""``medseg-inspect`` as a user runs it: a printed report and suggestions; one message and exit 3 on bad data."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


def test_inspect_prints_report_and_writes_json(tmp_path):
    from medseg.data.synth.brats import write_brats

    root = write_brats(tmp_path / "BraTS2013", n_cases=2, shape=(20, 20, 12), seed=1, year=2013)
    proc = run_cli("medseg.cli.inspect", ["data=brats", f"data.root={root}", "data.cache_dir=null", "data.lazy=false",
                                          f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "naming   {'2013': 2}" in proc.stdout
    assert "background: {'brain mask file brainmask.nii.gz': 2}" in proc.stdout
    assert "cannot split: " in proc.stdout and "data.splits=" in proc.stdout  # two cases cannot be split
    assert (tmp_path / "out" / "inspect.json").is_file()


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_inspect_bad_root_is_one_message(tmp_path):
    proc = run_cli("medseg.cli.inspect", [f"data.root={tmp_path / 'missing'}", f"hydra.run.dir={tmp_path / 'o'}"],
                   cwd=tmp_path)
    assert proc.returncode == 3
    assert "medseg-inspect: data error:" in proc.stderr and "data.root does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
