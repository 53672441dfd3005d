"""The import-linter contracts in pyproject.toml hold for the package, and break on an upward import,
a callbacks <-> hparams_search cycle or a core import of medseg.apps (each in a copy of the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("contracts")
    shutil.copytree(ROOT / "medseg", root / "medseg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_package_keeps_its_contracts():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in run.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("utils/io.py", "from medseg.pipelines import train", "medseg.utils is not allowed to import medseg.pipelines"),
    ("hparams_search/sweeper.py", "from medseg.callbacks.notify import WebhookNotifier",
     "medseg.hparams_search is not allowed to import medseg.callbacks"),
    ("data/case.py", "import medseg.apps.viewer", "medseg.data is not allowed to import medseg.apps"),
])
def test_a_wrong_import_breaks_a_contract(package_copy, module, line, broken):
    target = package_copy / "medseg" / module
    original = target.read_text()
    try:
        target.write_text(original + f"\n{line}  # noqa\n")
        run = lint_imports(package_copy)
    finally:
        target.write_text(original)
    assert run.returncode == 1, run.stdout[-3000:]
    assert broken in run.stdout
