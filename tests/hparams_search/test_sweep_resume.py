"""A 3-trial Optuna sweep on tiny synthetic data with SQLite storage, killed after its first trial and
rerun with the same command: the finished trial is kept and the study continues to n_trials."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

STUDY = "resume_test"


def sweep_cmd(tiny_drive: Path) -> list[str]:
    return [sys.executable, "-m", "medseg.cli.train", "-m", "hparams_search=vessels_optuna", "debug=smoke",
            "data=drive", f"data.root={tiny_drive}", "trainer.max_epochs=1", "data.samples_per_epoch=16",
            f"hydra.sweeper.study_name={STUDY}", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2",
            # the command line replaces the config's search range for this key: tiny networks
            "model.base_channels=choice(4, 8)"]


def load(db: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}")


def completed_trials(db: Path) -> int:
    """Finished trials, read without Optuna: opening an RDBStorage while the sweep sets up the schema
    is itself a writer that races the sweep (optuna#4621), so the test only reads, read-only."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = ?", ("COMPLETE",)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # no database or no trials table yet


@pytest.mark.slow
def test_killed_sweep_resumes_and_keeps_finished_trials(tiny_drive, tmp_path):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", MEDSEG_ROOT=str(tmp_path), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                           os.environ.get("PYTHONPATH", "")]))
    db = tmp_path / "outputs" / "sweeps" / STUDY / "optuna.db"
    log1 = open(tmp_path / "first.log", "w")  # noqa: SIM115  closed in the finally below
    proc = subprocess.Popen(sweep_cmd(tiny_drive), cwd=tmp_path, env=env, stdout=log1, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists() and completed_trials(db):
                break
            time.sleep(0.5)
        assert proc.poll() is None, f"the sweep ended before it could be killed:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # no clean-up of any kind: like a node failure
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log1.close()

    before = load(db).get_trials()
    finished = [t for t in before if t.state == TrialState.COMPLETE]
    running = [t for t in before if t.state == TrialState.RUNNING]
    assert len(finished) >= 1 and len(finished) < 3
    time.sleep(2.5)  # past the heartbeat grace period, so the killed trial is seen as stale

    second = subprocess.run(sweep_cmd(tiny_drive), cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                            timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    after = {t.number: t for t in load(db).get_trials()}
    complete = [t for t in after.values() if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    for t in finished:  # kept as they were: not re-run
        kept = after[t.number]
        assert kept.state == TrialState.COMPLETE
        assert kept.value == t.value and kept.params == t.params
        assert kept.datetime_complete == t.datetime_complete
    for t in running:  # the trial killed mid-run is failed, then re-run once with the same parameters
        assert after[t.number].state == TrialState.FAIL
        assert any(c.params == t.params for c in complete if c.number > t.number)
    summary = tmp_path / "outputs" / "sweeps" / STUDY / "summary"
    for name in ("trials.csv", "trials.md", "history.png", "experiment/best_trial.yaml"):
        assert (summary / name).is_file(), name
    # the importance plot only where it carries information: 3 complete trials whose scores differ over a
    # parameter that varied (tiny 1-epoch trials often tie at 0)
    informative = len({c.value for c in complete}) > 1 and len({c.params["model.base_channels"] for c in complete}) > 1
    assert (summary / "importance.png").is_file() == informative
    best = yaml.safe_load((summary / "experiment" / "best_trial.yaml").read_text())
    assert best["model"]["base_channels"] in (4, 8)
