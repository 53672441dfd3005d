"""Smoke tests of the benchmarks at toy sizes: the comparisons run and the *equality* parts hold.

Timings are never asserted (they depend on the machine); see ``experiments/benchmarks/``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_metrics  # noqa: E402
import bench_sliding_window as sw  # noqa: E402
import run_all  # noqa: E402

SMALL_2D = sw.Case("2D toy", (3, 70, 90), 29, (32, 32), base=4, depth=2, sw_batch_size=3)
SMALL_3D = sw.Case("3D toy", (4, 28, 24, 20), 3, (16, 16, 16), base=4, depth=2)


@pytest.mark.parametrize("case", [SMALL_2D, SMALL_3D], ids=["2d", "3d"])
def test_sliding_window_matches_monai(case):
    med, times, diff = sw.time_both(case, "cpu", repeats=1)
    assert diff <= 1e-5
    assert set(med) == {"medseg", "MONAI"} and all(len(t) == 1 for t in times.values())


def test_sliding_window_diff_detects_a_different_blend():
    """The comparison is not vacuous: a constant-weighted medseg window differs from MONAI's Gaussian."""
    import torch
    from monai.inferers import SlidingWindowInferer, sliding_window_inference

    net, image = sw.build(SMALL_2D, "cpu")
    with torch.no_grad():
        ref = sliding_window_inference(image, SMALL_2D.roi, 3, net, overlap=0.25, mode="gaussian")
    const = SlidingWindowInferer(SMALL_2D.roi, sw_batch_size=3, mode="constant")(image, net)
    assert float((const - ref).abs().max()) > 1e-4


def test_peak_memory_sees_the_output():
    """One call in a fresh process raises the peak by at least the full-size output it returns."""
    case = sw.Case("2D toy", (1, 384, 384), 29, (128, 128), base=4, depth=2)
    out_bytes = 29 * 384 * 384 * 4
    assert sw.peak_memory(case, "medseg", "cpu") >= out_bytes


def test_metrics_equal_to_monai_and_torchmetrics():
    for pred, target, spacing in [(*bench_metrics.masks_2d(160, 5, seed=3), (1.0, 1.0)),
                                  (*bench_metrics.masks_3d((48, 48, 32), seed=4), (1.0, 1.0, 1.5))]:
        assert pred.any(axis=tuple(range(1, pred.ndim))).all() and target.any(axis=tuple(range(1, pred.ndim))).all()
        assert not np.array_equal(pred, target)
        rows = bench_metrics.compare("Dice + IoU", bench_metrics.overlap_fns(pred, target), repeats=1)
        for name, fns in bench_metrics.surface_fns(pred, target, spacing, torchmetrics_hd=pred.ndim == 3).items():
            rows += bench_metrics.compare(name, fns, repeats=1)
        assert {r["peer"] for r in rows} == {"MONAI", "torchmetrics"}
        assert {r["metric"] for r in rows} >= {"Dice + IoU", "HD95", "NSD (1 mm)"}
        for r in rows:
            assert r["max_rel"] <= 1e-5, r


def test_run_all_writes_header_and_selected_sections(tmp_path, monkeypatch):
    monkeypatch.setitem(run_all.SECTIONS, "metrics",
                        lambda device: bench_metrics.run(96, 3, (32, 32, 24), repeats=1, surface_repeats=1))
    monkeypatch.setitem(run_all.SECTIONS, "overhead", lambda device: pytest.fail("not selected, must not run"))
    out = run_all.main(["--only", "metrics", "--out", str(tmp_path / "results.md")])
    text = out.read_text()
    assert re.search(r"- date: \d{4}-\d\d-\d\d", text) and "- machine: " in text and "monai " in text
    assert "--only metrics" in text and "(running)" not in text
    assert "## 4. Metrics" in text and "| HD95 | MONAI |" in text
    worst = float(re.search(r"Largest relative difference in any value: ([0-9.e+-]+)", text).group(1))
    assert worst <= 1e-5


def test_run_all_rejects_unknown_section(tmp_path):
    with pytest.raises(SystemExit):
        run_all.main(["--only", "metrics,nonsense", "--out", str(tmp_path / "r.md")])
    assert not (tmp_path / "r.md").exists()
