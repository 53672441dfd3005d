"""Open (or join) an Optuna study on shared storage, keep running trials alive, count progress.

Storage is any SQLAlchemy URL (``sqlite:///path/optuna.db`` by default, ``postgresql://...`` for many
workers on many machines). A second sweep started against the same storage and study name joins the
study: trials are asked and told through the storage, never through the process.

A trial left RUNNING by a killed sweep stops sending heartbeats; after ``grace_period`` seconds the next
sweep marks it FAIL and re-enqueues its parameters once (Optuna's ``RetryHeartbeatStaleTrialCallback``), so the
killed trial is re-run with the same hyperparameters.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError, OperationalError

log = logging.getLogger(__name__)

#: trial states that count towards ``n_trials``
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def sqlite_url(path: str | Path) -> str:
    """``sqlite:///<absolute path>`` (creating the parent folder)."""
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_storage(url: str, heartbeat_interval: int | None = 10, grace_period: int | None = 30,
                 max_retry: int = 1) -> RDBStorage:
    """An ``RDBStorage`` with heartbeats (``heartbeat_interval=None`` disables them)."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: there since 2.x
        kwargs: dict[str, Any] = {}
        if heartbeat_interval:
            kwargs = {"heartbeat_interval": int(heartbeat_interval),
                      "grace_period": int(grace_period or 2 * heartbeat_interval),
                      "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=max_retry)}
        for attempt in range(1, _INIT_ATTEMPTS):
            try:
                return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
            except (IntegrityError, OperationalError) as err:
                # Two sweeps opening one fresh database race on Optuna's schema set-up: the loser sees
                # "UNIQUE constraint failed: alembic_version" or "table ... already exists" (optuna#4621).
                # The winner has written the schema by then, so opening again succeeds.
                log.debug("storage %s is being set up by another process (%s); retrying", url, err.orig)
                time.sleep(0.2 * attempt)
        return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)


#: how many times :func:`open_storage` tries to open a storage another process is setting up
_INIT_ATTEMPTS = 5


def open_study(study_name: str, storage: RDBStorage, direction: Literal["minimize", "maximize"] = "maximize",
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study, or load it when it exists (``load_if_exists``); then fail stale trials."""
    study = optuna.create_study(study_name=study_name, storage=storage, direction=direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    if storage.get_heartbeat_interval() is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
            fail_trials_without_heartbeat(study, storage)
    return study


def fail_trials_without_heartbeat(study: optuna.Study, storage: RDBStorage) -> list[int]:
    """Fail (and retry, through the storage's stale-trial callback) RUNNING trials that never sent a
    heartbeat and started more than ``grace_period`` seconds ago; return their numbers.

    ``ask`` creates a trial RUNNING before its first heartbeat is written, and Optuna's stale check
    skips trials without one, so a sweep killed in that window left a RUNNING trial that no later sweep
    failed: it counted as running forever and the study stopped one trial short of ``n_trials``.
    """
    interval = storage.get_heartbeat_interval()
    if interval is None:
        return []
    grace = timedelta(seconds=storage.grace_period or 2 * interval)
    now = datetime.now()  # Optuna stamps datetime_start with the asking process's local clock
    old = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if t.datetime_start is not None and now - t.datetime_start > grace]
    if not old:
        return []
    try:  # Optuna has no public query for "has a heartbeat row"
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(storage.scoped_session) as session:
            never = [t for t in old if models.TrialHeartbeatModel.where_trial_id(t._trial_id, session) is None]
    except (ImportError, AttributeError) as err:  # a later Optuna moved them: keep its own stale check only
        log.debug("cannot look up heartbeats (%s); trials killed before their first one stay RUNNING", err)
        return []
    failed = []
    callback = storage.get_heartbeat_stale_trial_callback()
    for t in never:
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another sweep failed it first
        log.warning("trial %d was left RUNNING without a heartbeat by a killed sweep: failed%s", t.number,
                    " and re-enqueued" if callback else "")
        failed.append(t.number)
        if callback is not None:
            callback(study, storage.get_trial(t._trial_id))
    return failed


def ask(study: optuna.Study, space: dict) -> optuna.Trial:
    """``study.ask(space)``; the sweeper records heartbeats itself (:class:`Heartbeat`), so Optuna's
    warning that heartbeats are meant for ``Study.optimize`` is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask(fixed_distributions=space)


def count_states(study: optuna.Study) -> Counter:
    """``Counter`` of trial states in the study (read from storage)."""
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def trials_left(study: optuna.Study, n_trials: int) -> int:
    """How many more trials to start: ``n_trials`` minus finished (COMPLETE/PRUNED) and running trials.

    Running trials may belong to other workers; counting them keeps many workers from overshooting.
    Waiting (enqueued) trials are not counted: they are started by the next ``ask``.
    """
    c = count_states(study)
    return n_trials - sum(c[s] for s in DONE_STATES) - c[TrialState.RUNNING]


class Heartbeat:
    """Record a heartbeat for some trials every ``interval`` seconds in a daemon thread.

    Use as a context manager around the launch of the trials' jobs.
    """

    def __init__(self, storage: RDBStorage, trial_ids: Iterable[int], interval: float) -> None:
        self.storage, self.trial_ids, self.interval = storage, list(trial_ids), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for tid in self.trial_ids:
                try:
                    self.storage.record_heartbeat(tid)
                except Exception as exc:  # noqa: BLE001  never let a storage hiccup kill the sweep
                    log.warning("heartbeat for trial %s failed: %s", tid, exc)

    def __enter__(self) -> Heartbeat:  # noqa: PYI034
        if self.storage.get_heartbeat_interval() is not None:
            for tid in self.trial_ids:
                self.storage.record_heartbeat(tid)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


@contextmanager
def heartbeat(storage: RDBStorage, trials: Iterable[optuna.Trial]) -> Iterator[None]:
    """``with heartbeat(storage, trials): ...`` keeps ``trials`` from being marked stale."""
    interval = storage.get_heartbeat_interval() or 0
    with Heartbeat(storage, [t._trial_id for t in trials], interval):
        yield


def load_trial(storage: str | BaseStorage, study_name: str, number: int,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Trial:
    """The live ``optuna.Trial`` with this number, from another process (for reporting and pruning)."""
    if isinstance(storage, str):
        storage = optuna.storages.get_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
    return optuna.trial.Trial(study, trial_id)


#: study user attribute holding the sweep's pruner config (trials rebuild the pruner from it)
PRUNER_ATTR = "medseg_pruner"
#: trial user attribute holding the trial's run folder (a retried trial finds the killed one's checkpoints)
RUN_DIR_ATTR = "run_dir"


def retried_run_dirs(tag, run_dir: str | Path) -> list[str]:
    """For the sweep trial ``tag`` (``{study_name, storage, number}``) running in ``run_dir``: the run
    folders of the killed trials it retries (Optuna's retry of a stale trial copies their user attributes,
    so the folder recorded by the killed trial is still there), newest first; then records ``run_dir``."""
    storage = optuna.storages.get_storage(str(tag["storage"]))
    study_id = storage.get_study_id_from_name(str(tag["study_name"]))
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(tag["number"]))
    frozen = storage.get_trial(trial_id)
    dirs = []
    if "failed_trial" in frozen.system_attrs and frozen.user_attrs.get(RUN_DIR_ATTR):
        dirs.append(str(frozen.user_attrs[RUN_DIR_ATTR]))
    storage.set_trial_user_attr(trial_id, RUN_DIR_ATTR, str(run_dir))
    return [d for d in dirs if Path(d).resolve() != Path(run_dir).resolve()]
