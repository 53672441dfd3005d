"""The fault harness (``make test-faults``): bad inputs, kills, corrupt and hostile checkpoints, no network.

Every case runs a real ``medseg-*`` command in a subprocess on tiny synthetic data and asserts its
verdict. At the end a table of all cases (area, case, expected verdict, result) is printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: area -> [(case, expected, outcome)] filled by the reports of the tests of this folder
RESULTS: dict[str, list[tuple[str, str, str]]] = defaultdict(list)


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MEDSEG_DEBUG", "HYDRA_FULL_ERROR")}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", PYTHONUNBUFFERED="1", MEDSEG_ROOT=str(root), WANDB_MODE="offline",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra)
    return env


def command(module: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_cli(module: str, args: list[str], cwd: Path, timeout: int = 300, wrap: list[str] | None = None,
            **env: str) -> Run:
    """``python -m medseg.cli.<module> args`` as a user would run ``medseg-<module>``."""
    cmd = (wrap or []) + command(module, args)
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, env=cli_env(cwd, **env), capture_output=True, text=True, timeout=timeout)
    return Run(cmd, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def record(area: str, case: str, expected: str):
    """Decorator-free bookkeeping: ``with record(...)`` around the checks of one case."""
    return _Recorder(area, case, expected)


class _Recorder:
    def __init__(self, area: str, case: str, expected: str) -> None:
        self.area, self.case, self.expected = area, case, expected

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        outcome = "pass" if exc_type is None else ("skip" if issubclass(exc_type, pytest.skip.Exception)
                                                    else "FAIL")
        RESULTS[self.area].append((self.case, self.expected, outcome))
        return False


# ----------------------------------------------------------------- tiny datasets
@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """One tiny synthetic dataset per format (and variant), written once; cases copy and corrupt them."""
    from medseg.data.synth.brats import write_brats
    from medseg.data.synth.chase import write_chase
    from medseg.data.synth.drive import write_drive
    from medseg.data.synth.folder import write_folder
    from medseg.data.synth.handbone import write_handbone
    from medseg.data.synth.jsrt import write_jsrt

    base = tmp_path_factory.mktemp("pristine")
    out = {
        "drive": write_drive(base / "DRIVE", n_train=4, n_test=2, height=48, width=48, seed=1),
        "chase": write_chase(base / "CHASE_DB1", n_subjects=4, height=48, width=48, seed=1),
        "jsrt": write_jsrt(base / "JSRT", n=8, size=64, layout="scr", seed=1),
        "jsrt_png": write_jsrt(base / "JSRT_png", n=8, size=64, layout="png", seed=1),
        "handbone": write_handbone(base / "handbone", n_train=4, n_test=1, size=64, seed=1),
        "folder": write_folder(base / "folder", n=8, size=(48, 48), task="binary", ext="png", seed=1),
        "folder_multiclass": write_folder(base / "folder_mc", n=8, size=(48, 48), task="multiclass", ext="png",
                                          seed=1),
        "folder_nifti": write_folder(base / "folder_nii", n=6, size=(16, 16, 16), task="binary", ext="nii.gz",
                                     seed=1),
        "brats": write_brats(base / "BraTS2020", n_cases=4, shape=(16, 16, 16), seed=1),
    }
    return {k: Path(v) for k, v in out.items()}


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------- the summary table
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    rows = [(area, case, expected, outcome) for area, items in RESULTS.items() for case, expected, outcome in items]
    w_area = max(len("area"), *(len(r[0]) for r in rows))
    w_case = max(len("case"), *(len(r[1]) for r in rows))
    w_exp = max(len("expected"), *(len(r[2]) for r in rows))
    tr.write_sep("=", "fault harness: cases")
    tr.write_line(f"{'area':{w_area}}  {'case':{w_case}}  {'expected':{w_exp}}  result")
    for area, case, expected, outcome in rows:
        tr.write_line(f"{area:{w_area}}  {case:{w_case}}  {expected:{w_exp}}  {outcome}")
    tr.write_sep("=", "fault harness: summary")
    tr.write_line(f"{'area':{w_area}}  {'cases':>5}  {'pass':>5}  {'fail':>5}  {'skip':>5}")
    tot = [0, 0, 0, 0]
    for area, items in RESULTS.items():
        n = len(items)
        p = sum(o == "pass" for *_, o in items)
        f = sum(o == "FAIL" for *_, o in items)
        s = sum(o == "skip" for *_, o in items)
        tot = [tot[0] + n, tot[1] + p, tot[2] + f, tot[3] + s]
        tr.write_line(f"{area:{w_area}}  {n:5d}  {p:5d}  {f:5d}  {s:5d}")
    tr.write_line(f"{'all':{w_area}}  {tot[0]:5d}  {tot[1]:5d}  {tot[2]:5d}  {tot[3]:5d}")
