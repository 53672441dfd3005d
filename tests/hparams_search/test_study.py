"""Shared study storage: sweeps started side by side on one fresh database all open it."""

from __future__ import annotations

import multiprocessing as mp

from medseg.hparams_search.study import open_storage, sqlite_url


def _open(url: str, barrier, results) -> None:
    barrier.wait()  # all processes reach Optuna's schema set-up at the same moment
    try:
        open_storage(url, heartbeat_interval=None)
        results.put("ok")
    except Exception as err:  # noqa: BLE001  the test reports what the loser of the race saw
        results.put(f"{type(err).__name__}: {err}"[:200])


def test_sweeps_opening_one_fresh_database_at_once_all_succeed(tmp_path):
    # Without the retry in open_storage about one process in five lost this race (optuna#4621:
    # "UNIQUE constraint failed: alembic_version" / "table alembic_version already exists").
    ctx = mp.get_context("fork")
    outcomes = []
    for round_ in range(6):
        url = sqlite_url(tmp_path / f"round{round_}" / "optuna.db")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(url, barrier, results)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        outcomes += [results.get(timeout=10) for _ in procs]
    assert outcomes == ["ok"] * len(outcomes), [o for o in outcomes if o != "ok"]
