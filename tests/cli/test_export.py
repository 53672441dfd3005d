"""``medseg-export`` and ``medseg-predict package=`` as a user runs them (subprocesses)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.conftest import run_cli
from tests.export.conftest import make_run
from tests.export.test_parity import BINARY


def test_export_then_predict_from_the_package_and_refuse_a_tampered_one(tmp_path):
    run = make_run(tmp_path / "run", BINARY)
    pkg = tmp_path / "deploy" / "v1"
    proc = run_cli("medseg.cli.export", [f"run_dir={run}", f"out={pkg}", "format=onnx", "licence=CC-BY-4.0",
                                         f"hydra.run.dir={tmp_path}/log"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(pkg) in proc.stdout and (pkg / "models" / "member_0.onnx").is_file()
    assert "CC-BY-4.0" in (pkg / "model_card.md").read_text()

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (41, 53, 3), dtype=np.uint8)).save(images / "a.png")
    (pkg / "package.json").write_text((pkg / "package.json").read_text().replace('"rule"', '"rule" '))
    proc = run_cli("medseg.cli.predict", [f"package={pkg}", f"input_dir={images}", f"hydra.run.dir={tmp_path}/p"],
                   cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "package.json: checksum mismatch" in proc.stderr and "Traceback" not in proc.stderr


def test_export_reports_a_missing_run_folder(tmp_path):
    """(In-process: the CLI's one-line message and exit status 3 are those of any DataError, shown above.)"""
    import pytest

    from medseg.errors import DataError
    from medseg.pipelines.export import export_run
    from tests.conftest import compose_cfg

    with pytest.raises(DataError, match="nope: run folder not found"):
        export_run(compose_cfg("export", [f"run_dir={tmp_path}/nope"], tmp_path / "log"), tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()
