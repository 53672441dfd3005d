"""Smoke test of the export benchmark at a toy size: the three engines run on the same input and
give the same probabilities (times are never asserted), and the memory child reports a peak."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_export as be  # noqa: E402
import pytest  # noqa: E402

TOY = be.Case("2D toy", (3, 70, 45), 1, (32, 32), base=4, depth=2, sw_batch_size=4)


@pytest.mark.slow  # about 15 s alone (exports, three engines, a subprocess); more on a busy machine
def test_engines_agree_and_memory_is_measured(tmp_path):
    package = be.build_package(TOY, tmp_path / "pkg")
    med, times, diffs = be.time_engines(TOY, package, threads=1, repeats=1)
    assert set(med) == set(be.ENGINES) and all(len(t) == 1 for t in times.values())
    assert diffs["eager"] == 0.0 and max(diffs.values()) <= 1e-4
    mem = be.memory(TOY, "onnxruntime", package, threads=1)
    out_bytes = 1 * 70 * 45 * 4
    assert mem["peak"] > mem["growth"] >= out_bytes
