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
