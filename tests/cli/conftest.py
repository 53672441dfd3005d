"""Run folders shared by the entry-point tests: one tiny ``medseg-train`` and one 2-fold ``medseg-kfold``,
each run once per session through the real command (subprocess) and read by the eval, predict, report and
ensemble tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import SMOKE_LR, run_cli


@pytest.fixture(scope="session")
def finished_run(tiny_drive, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``medseg-train debug=smoke trainer.max_epochs=2`` (plain progress lines: no TTY): run folder, process."""
    cwd = tmp_path_factory.mktemp("cli")
    run_dir = cwd / "run"
    proc = run_cli("medseg.cli.train", ["debug=smoke", "trainer.max_epochs=2", SMOKE_LR, f"data.root={tiny_drive}",
                                        f"hydra.run.dir={run_dir}"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


@pytest.fixture(scope="session")
def kfold_run(tiny_drive, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``medseg-kfold folds=2 debug=smoke``: the cross-validation folder and the process."""
    cwd = tmp_path_factory.mktemp("cli_kfold")
    out = cwd / "cv"
    proc = run_cli("medseg.cli.kfold", ["debug=smoke", "folds=2", SMOKE_LR, f"data.root={tiny_drive}",
                                        "metrics=[auc,hd95]", f"hydra.run.dir={out}"], cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def assert_one_line_error(proc: subprocess.CompletedProcess, prog: str, code: int, needle: str) -> None:
    """The entry point's bad-input contract: exit ``code``, one ``<prog>: ...`` line on stderr that names
    the problem (``needle``), no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    messages = [line for line in proc.stderr.splitlines()
                if line.startswith(f"{prog}:") and "MEDSEG_DEBUG=1 for the full traceback" not in line]
    assert len(messages) == 1 and needle in messages[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
