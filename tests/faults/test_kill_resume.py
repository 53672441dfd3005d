"""Kills at different moments of ``medseg-train``, ``medseg-kfold`` and a sweep, then the same command with
``resume=true`` (or simply again): the final metrics equal the uninterrupted run's to 1e-6 on CPU.
SIGTERM and SIGINT end with 143 / 130, a resumable checkpoint and a run folder marked interrupted."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.conftest import cli_env, command, record, run_cli

pytestmark = pytest.mark.faults

TOL = 1e-6
TRAIN = ["debug=smoke", "data=drive", "trainer.max_epochs=4", "data.samples_per_epoch=32", "model.base_channels=8",
         "optimizer.lr=0.01"]
#: optimiser steps of a TRAIN run: 4 epochs of 32 samples in batches of 8 (debug=smoke)
LAST_STEP = 4 * 32 // 8


@pytest.fixture(scope="module")
def drive(tmp_path_factory) -> Path:
    from medseg.data.synth.drive import write_drive

    return write_drive(tmp_path_factory.mktemp("kill_data") / "DRIVE", n_train=6, n_test=2, height=64, width=64,
                       seed=3)


def numbers(path: Path) -> dict[str, float]:
    d = json.loads(path.read_text())
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and v == v}


def assert_same(ref: dict[str, float], got: dict[str, float]) -> None:
    assert set(ref) == set(got)
    diffs = {k: abs(ref[k] - got[k]) for k in ref}
    assert max(diffs.values()) <= TOL, {k: (ref[k], got[k]) for k, d in diffs.items() if d > TOL}


def rows(run_dir: Path) -> int:
    m = run_dir / "metrics.csv"
    return max(0, len(m.read_text().splitlines()) - 1) if m.exists() else 0


def step_of(ckpt: Path) -> int:
    from medseg.utils.checkpoint import load_checkpoint

    try:
        return int(load_checkpoint(ckpt)["global_step"])
    except Exception:
        return -1


def start(module: str, args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(command(module, args), cwd=cwd, env=cli_env(cwd), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(proc: subprocess.Popen, cond, sig=signal.SIGKILL, timeout: float = 300, log: Path | None = None) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline and not cond():
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before the kill:\n{log.read_text()[-3000:] if log else ''}"
    proc.send_signal(sig)
    return proc.wait(timeout=120)


@pytest.fixture(scope="module")
def reference(drive, tmp_path_factory) -> dict[str, float]:
    tmp = tmp_path_factory.mktemp("ref")
    run = run_cli("medseg.cli.train", TRAIN + [f"data.root={drive}", f"hydra.run.dir={tmp / 'run'}"], tmp)
    assert run.returncode == 0, run.output[-3000:]
    ref = numbers(tmp / "run" / "results.json")
    assert ref["test/dice"] > 0.1, "the reference run learned nothing: the comparison would be vacuous"
    return ref


def _moment(name: str, run_dir: Path, t0: float, rng: random.Random):
    last = run_dir / "checkpoints" / "last.ckpt"
    if name == "after-epoch-2":  # an epoch boundary: the end-of-epoch checkpoint exists
        return lambda: rows(run_dir) >= 2
    if name == "mid-epoch-1":  # checkpoints every step; killed inside epoch 1 (steps 4..7)
        return lambda: rows(run_dir) >= 1 and last.exists() and step_of(last) >= 6
    if name == "random":  # anywhere in training, often during a checkpoint write
        delay = rng.uniform(0.0, 4.0)
        state = {}

        def cond():
            if "t" not in state and last.exists():
                state["t"] = time.monotonic()
            # at the latest two steps before the end: on a fast machine the whole run (test included) once
            # ended inside the delay, and the kill hit the finished run's teardown
            return "t" in state and (time.monotonic() - state["t"] >= delay or step_of(last) >= LAST_STEP - 2)
        return cond
    raise ValueError(name)


@pytest.mark.parametrize("moment", ["after-epoch-2", "mid-epoch-1", "random"])
def test_kill9_then_resume_is_exact(drive, reference, tmp_path, moment):
    with record("kill/resume", f"train kill -9 {moment}", "equal to 1e-6"):
        run_dir = tmp_path / "run"
        extra = [] if moment == "after-epoch-2" else ["callbacks.checkpoint.every_n_train_steps=1"]
        args = TRAIN + extra + [f"data.root={drive}", f"hydra.run.dir={run_dir}"]
        log = tmp_path / "first.log"
        proc = start("medseg.cli.train", args, tmp_path, log)
        rc = kill_when(proc, _moment(moment, run_dir, time.monotonic(), random.Random(7)), log=log)
        assert rc == -signal.SIGKILL
        assert not (run_dir / "results.json").exists()
        again = run_cli("medseg.cli.train", args + ["resume=true"], tmp_path)
        assert again.returncode == 0, again.output[-3000:]
        assert_same(reference, numbers(run_dir / "results.json"))
        assert json.loads((run_dir / "status.json").read_text())["state"] == "complete"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_marks_interrupted_and_exits_128_plus_n(drive, reference, tmp_path, sig):
    with record("signals", f"train {sig.name}", f"exit {128 + sig}, resume equal"):
        run_dir = tmp_path / "run"
        args = TRAIN + [f"data.root={drive}", f"hydra.run.dir={run_dir}"]
        log = tmp_path / "first.log"
        proc = start("medseg.cli.train", args, tmp_path, log)
        # inside epoch 1: after the first end-of-epoch checkpoint, before the second
        rc = kill_when(proc, lambda: rows(run_dir) >= 1, sig=sig, log=log)
        out = log.read_text()
        assert rc == 128 + sig, out[-3000:]
        assert "Traceback" not in out
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] == "interrupted" and status["signal"] == sig.name
        assert (run_dir / "INTERRUPTED").is_file() and not (run_dir / "results.json").exists()
        assert f"resume=true hydra.run.dir={run_dir}" in out
        assert step_of(run_dir / "checkpoints" / "last.ckpt") >= 4  # a resumable checkpoint (at the stop or epoch 0)
        again = run_cli("medseg.cli.train", args + ["resume=true"], tmp_path)
        assert again.returncode == 0, again.output[-3000:]
        assert_same(reference, numbers(run_dir / "results.json"))
        assert not (run_dir / "INTERRUPTED").exists()
        assert json.loads((run_dir / "status.json").read_text())["state"] == "complete"


KFOLD = ["debug=smoke", "folds=2", "metrics=[hd95]", "trainer.max_epochs=3", "data.samples_per_epoch=32",
         "model.base_channels=8", "optimizer.lr=0.01"]


def test_kfold_killed_in_fold_1_resumes_every_fold_exactly(drive, tmp_path):
    with record("kill/resume", "kfold kill -9 in fold 1", "each fold equal"):
        ref_dir, cv = tmp_path / "ref", tmp_path / "cv"
        ref = run_cli("medseg.cli.kfold", KFOLD + [f"data.root={drive}", f"hydra.run.dir={ref_dir}"], tmp_path)
        assert ref.returncode == 0, ref.output[-3000:]
        args = KFOLD + [f"data.root={drive}", f"hydra.run.dir={cv}"]
        log = tmp_path / "first.log"
        proc = start("medseg.cli.kfold", args, tmp_path, log)
        kill_when(proc, lambda: rows(cv / "fold_1") >= 1, log=log)
        fold0 = (cv / "fold_0" / "results.json").read_text()
        again = run_cli("medseg.cli.kfold", args, tmp_path)
        assert again.returncode == 0, again.output[-3000:]
        assert "fold 0: finished earlier" in again.output
        assert (cv / "fold_0" / "results.json").read_text() == fold0  # not retrained
        for k in (0, 1):
            assert_same(numbers(ref_dir / f"fold_{k}" / "results.json"), numbers(cv / f"fold_{k}" / "results.json"))
        assert (cv / "folds.csv").read_text() == (ref_dir / "folds.csv").read_text()


SWEEP = ["-m", "hparams_search=vessels_optuna", "debug=smoke", "data=drive", "trainer.max_epochs=3",
         "data.samples_per_epoch=32", "hydra.sweeper.n_trials=2", "hydra.sweeper.heartbeat_interval=1",
         "hydra.sweeper.grace_period=2", "model.base_channels=choice(4, 8)"]


def _study(db: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def test_sweep_trial_killed_then_retried_resumes_exactly(drive, tmp_path):
    import optuna
    from optuna.trial import TrialState

    with record("kill/resume", "sweep trial kill -9", "retried trial equal"):
        values = {}
        for name in ("ref_sweep", "killed_sweep"):
            args = SWEEP + [f"data.root={drive}", f"hydra.sweeper.study_name={name}"]
            db = tmp_path / "outputs" / "sweeps" / name / "optuna.db"
            if name == "killed_sweep":  # kill trial 1 once it has an end-of-epoch checkpoint
                log = tmp_path / "killed.log"
                proc = start("medseg.cli.train", args, tmp_path, log)
                trial1 = tmp_path / "outputs" / "sweeps" / name / "trial_1"
                kill_when(proc, lambda t=trial1: rows(t) >= 1 and (t / "checkpoints" / "last.ckpt").exists(),
                          log=log)
                time.sleep(2.5)  # past the heartbeat grace period: the killed trial is stale
            run = run_cli("medseg.cli.train", args, tmp_path, timeout=600)
            assert run.returncode == 0, run.output[-3000:]
            study = _study(db, name)
            values[name] = {tuple(sorted(t.params.items())): t.value for t in study.get_trials()
                            if t.state == TrialState.COMPLETE}
            if name == "killed_sweep":
                assert "retries a killed trial: continuing from" in run.output
                assert any(t.state == TrialState.FAIL for t in study.get_trials())
        assert values["ref_sweep"].keys() == values["killed_sweep"].keys()
        for params, v in values["ref_sweep"].items():
            assert abs(v - values["killed_sweep"][params]) <= TOL, (params, v, values["killed_sweep"][params])
        del optuna


def test_run_without_network(drive, tmp_path):
    """The default job with the wandb logger (offline) inside a network namespace with no network."""
    with record("network", "unshare -n medseg-train logger=wandb callbacks=wandb", "exit 0"):
        if not shutil.which("unshare"):
            pytest.skip("unshare (util-linux) is not installed")
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"network namespaces not allowed here: {probe.stderr.strip()[:200]}")
        run = run_cli("medseg.cli.train", ["debug=smoke", "data=drive", f"data.root={drive}", "logger=wandb",
                                           "callbacks=wandb",
                                           "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"],
                      tmp_path, wrap=["unshare", "-n"])
        assert run.returncode == 0, run.output[-3000:]
        assert (tmp_path / "run" / "results.json").is_file()
