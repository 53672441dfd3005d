"""Uncertainty of leaderboard numbers: bootstrap CIs of a mean and paired comparisons of two runs.

A leaderboard gap means something only if it is larger than the case-to-case noise. Both functions
resample *cases* (images / patients) with replacement, the unit the test set was drawn in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """``b - a`` on the shared cases: mean difference with a bootstrap CI, and two p-values."""

    a: str
    b: str
    diff: Interval
    p_bootstrap: float
    p_wilcoxon: float

    def sentence(self, metric: str = "Dice") -> str:
        if self.diff.mean >= 0:
            lead, trail, lo, hi = self.b, self.a, self.diff.low, self.diff.high
        else:  # state the CI of the leader's gain
            lead, trail, lo, hi = self.a, self.b, -self.diff.high, -self.diff.low
        verdict = "significant" if self.diff.low > 0 or self.diff.high < 0 else "not significant"
        return (f"{lead} beats {trail} by {abs(self.diff.mean):.4f} {metric}, CI "
                f"[{lo:.4f}, {hi:.4f}] over {self.diff.n} cases "
                f"(paired bootstrap p={self.p_bootstrap:.3g}, {self._wilcoxon()}; {verdict} at 95%)")

    def _wilcoxon(self) -> str:
        if np.isfinite(self.p_wilcoxon):
            return f"Wilcoxon p={self.p_wilcoxon:.3g}"
        return "Wilcoxon test undefined: every paired difference is 0"


def bootstrap_ci(values, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap CI of the mean of ``values`` (``nan`` dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(v.mean()), float(lo), float(hi), int(v.size))


def paired_comparison(
    a: pd.Series, b: pd.Series, name_a: str = "A", name_b: str = "B", n_boot: int = 10000, seed: int = 0,
) -> PairedComparison:
    """Compare two per-case score series (indexed by case id) on the cases they share.

    The bootstrap resamples the per-case differences ``b - a``; its two-sided p-value is twice the
    smaller tail mass of the resampled means around 0 (with a +1 correction, so at least
    ``1 / (n_boot + 1)``). The Wilcoxon signed-rank test is the
    classical non-parametric check (``nan`` when all differences are zero)."""
    shared = a.index.intersection(b.index)
    if len(shared) == 0:
        raise ValueError(f"{name_a} and {name_b} share no cases: a paired comparison needs the same test cases")
    d = (b.loc[shared].astype(float) - a.loc[shared].astype(float)).to_numpy()
    d = d[np.isfinite(d)]
    diff = bootstrap_ci(d, n_boot=n_boot, seed=seed)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(1)
    tail = min(int((means <= 0).sum()), int((means >= 0).sum()))
    p_boot = float(min(1.0, (2 * tail + 1) / (n_boot + 1)))  # never exactly 0 from a finite resample
    p_wil = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else float("nan")
    return PairedComparison(name_a, name_b, diff, p_boot, p_wil)


#: below this many cases a bootstrap CI is shown only with a caveat: resampling 2-4 values gives
#: intervals that look precise but mostly reflect which few cases happened to be drawn
MIN_CI_CASES = 5


def ci_caveat(n_cases: dict[str, int], minimum: int = MIN_CI_CASES) -> str | None:
    """A sentence for a report whose CIs rest on fewer than ``minimum`` cases (``None`` if none do)."""
    few = {name: n for name, n in n_cases.items() if n < minimum}
    if not few:
        return None
    counts = sorted(set(few.values()))
    shown = ", ".join(f"`{name}`" for name in list(few)[:6]) + (f" and {len(few) - 6} more" if len(few) > 6 else "")
    return (f"**Caveat:** the bootstrap CIs of {shown} rest on only {'/'.join(map(str, counts))} case(s), fewer "
            f"than {minimum}: they are not reliable; score more cases before reading anything into them.")
