"""Each bad input through ``medseg-train``: a clean verdict (non-zero exit of the error's kind, a message
naming the file or key, no traceback, no ``results.json``), or, where a fallback is the design, a
completed run that warns by file name and records the fallback in its report."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.cases import CASES, COMMON, FORMAT_ARGS, BadCase
from tests.faults.conftest import copy_dataset, record, run_cli

pytestmark = pytest.mark.faults


def _prepare(case: BadCase, datasets: dict[str, Path], base: Path) -> tuple[Path, list[str]]:
    tmp = base / case.id.replace("/", "__")
    tmp.mkdir(parents=True)
    root = copy_dataset(datasets[case.fmt], tmp / datasets[case.fmt].name)
    if case.mutate is not None:
        case.mutate(root)
    (tmp / "empty_root").mkdir()
    fill = lambda a: a.format(root=root, tmp=tmp)  # noqa: E731
    args = [fill(a) for a in FORMAT_ARGS[case.fmt]] + [f"data.root={root}"] + COMMON
    args += [fill(a) for a in case.overrides] + [f"hydra.run.dir={tmp / 'run'}"]
    return tmp, args


@pytest.fixture(scope="module")
def verdicts(datasets, tmp_path_factory, request):
    """Every selected case started at once on a pool of two (the CI machine has 2 cores); each test waits
    for its own."""
    base = tmp_path_factory.mktemp("bad_inputs")
    chosen = {item.callspec.id for item in request.session.items
              if item.originalname == "test_bad_input" and hasattr(item, "callspec")}

    def go(case: BadCase):
        tmp, args = _prepare(case, datasets, base)
        return tmp, run_cli("medseg.cli.train", args, cwd=tmp, timeout=300)

    pool = ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)))
    futures = {c.id: pool.submit(go, c) for c in CASES if c.id in chosen}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: BadCase, verdicts):
    expected = "warn + report" if case.expect == "warn" else f"exit {case.expect}"
    with record("bad input", case.id, expected):
        tmp, run = verdicts[case.id].result()
        out = run.output
        assert "Traceback" not in out, f"traceback:\n{out[-3000:]}"
        assert case.names in out, f"the message does not name {case.names!r}:\n{run.stderr[-2000:]}"
        if case.expect == "warn":
            assert run.returncode == 0, run.stderr[-3000:]
            report = (tmp / "run" / "report.md").read_text()
            assert case.names in report, "the report does not record the fallback"
            assert (tmp / "run" / "results.json").is_file()
        else:
            assert run.returncode == case.expect, f"exit {run.returncode}, expected {case.expect}:\n{run.stderr[-3000:]}"
            assert not (tmp / "run" / "results.json").exists(), "a failed run left a results.json"
            if case.expect != 1:  # Hydra's own config errors (exit 1) stop before the run folder
                assert "medseg-train:" in run.stderr


def _clean_failure(run, code: int, names: str) -> None:
    assert run.returncode == code, run.output[-3000:]
    assert names in run.stderr and "Traceback" not in run.output, run.stderr[-2000:]


def test_sweep_trial_error_stops_the_sweep_with_its_exit_status(tmp_path):
    with record("bad input", "sweep/trial-data-error", "exit 3"):
        run = run_cli("medseg.cli.train", ["-m", "hparams_search=vessels_optuna", "debug=smoke", "data=drive",
                                           f"data.root={tmp_path / 'nope'}", "hydra.sweeper.n_trials=2",
                                           "hydra.sweeper.study_name=err"], cwd=tmp_path)
        _clean_failure(run, 3, "nope")


def test_kfold_failure_leaves_no_summary(datasets, tmp_path):
    with record("bad input", "kfold/fold-data-error", "exit 3, no summary"):
        root = copy_dataset(datasets["drive"], tmp_path / "DRIVE")
        (root / "training" / "1st_manual" / "22_manual1.gif").unlink()
        out = tmp_path / "cv"
        run = run_cli("medseg.cli.kfold", ["debug=smoke", f"data.root={root}", "folds=2", "trainer.max_epochs=1",
                                           f"hydra.run.dir={out}"], cwd=tmp_path)
        _clean_failure(run, 3, "22_manual1.gif")
        for name in ("folds.csv", "report.md", "ensemble/leaderboard.csv", "fold_0/results.json"):
            assert not (out / name).exists(), name


def test_ensemble_of_a_missing_member_fails_cleanly(tmp_path):
    with record("bad input", "ensemble/missing-member", "exit 3, no leaderboard"):
        out = tmp_path / "ens"
        run = run_cli("medseg.cli.ensemble", [f"members=[{tmp_path / 'no_run'}]", f"hydra.run.dir={out}"],
                      cwd=tmp_path)
        _clean_failure(run, 3, "no_run")
        assert not (out / "leaderboard.csv").exists() and not (out / "report.md").exists()
