from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseg.report.stats import bootstrap_ci, paired_comparison


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.8, 0.05, 10), rng.normal(0.8, 0.05, 1000)
    a, b = bootstrap_ci(small), bootstrap_ci(large)
    assert a.low < a.mean < a.high and b.low < b.mean < b.high
    assert (b.high - b.low) < (a.high - a.low)
    assert b.low < 0.8 < b.high
    assert bootstrap_ci([np.nan, 1.0, 1.0]).n == 2


def test_paired_comparison_detects_a_consistent_gain():
    rng = np.random.default_rng(1)
    idx = [f"c{i}" for i in range(30)]
    a = pd.Series(rng.uniform(0.6, 0.9, 30), index=idx)
    b = a + 0.012 + rng.normal(0, 0.002, 30)  # B beats A on every case by ~0.012
    c = paired_comparison(a, b, "A", "B")
    assert c.diff.mean == pytest.approx(0.012, abs=0.002)
    assert 0 < c.diff.low < c.diff.mean < c.diff.high
    assert c.p_bootstrap < 0.01 and c.p_wilcoxon < 0.01
    assert c.sentence().startswith("B beats A by 0.01") and "significant at 95%" in c.sentence()
    flipped = paired_comparison(b, a, "B", "A")  # same pair the other way round: same sentence
    lo, hi = c.diff.low, c.diff.high
    assert flipped.sentence().startswith("B beats A") and f"CI [{lo:.4f}, {hi:.4f}]" in flipped.sentence()


def test_paired_comparison_of_noise_is_not_significant():
    rng = np.random.default_rng(2)
    idx = [f"c{i}" for i in range(20)]
    a = pd.Series(rng.uniform(0.6, 0.9, 20), index=idx)
    b = pd.Series(a.to_numpy()[rng.permutation(20)], index=idx)  # same scores shuffled across cases
    c = paired_comparison(a, b, "A", "B")
    assert c.diff.low < 0 < c.diff.high and "not significant" in c.sentence()


def test_paired_comparison_uses_shared_cases_only():
    a = pd.Series([0.5, 0.6, 0.7], index=["x", "y", "z"])
    b = pd.Series([0.9, 0.7], index=["y", "w"])
    assert paired_comparison(a, b).diff.n == 1
    with pytest.raises(ValueError, match="share no cases"):
        paired_comparison(a, pd.Series([1.0], index=["q"]))


def test_identical_scores_say_so_instead_of_a_nan_p_value():
    import pandas as pd

    from medseg.report.stats import paired_comparison

    a = pd.Series([0.5, 0.7, 0.9], index=["x", "y", "z"])
    text = paired_comparison(a, a.copy(), "A", "B", n_boot=200).sentence()
    assert "by 0.0000 Dice" in text and "every paired difference is 0" in text and "nan" not in text
