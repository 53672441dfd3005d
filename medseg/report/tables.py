"""Per-image tables and the predecessor-style summary (max / min / mean) as Markdown."""

from __future__ import annotations

import pandas as pd

SUMMARY_ROWS = ("max", "min", "mean", "std")


def summarize(per_image: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Rows max / min / mean / std of each metric column."""
    cols = [m for m in metrics if m in per_image.columns]
    return pd.DataFrame({r: getattr(per_image[cols], r)() for r in SUMMARY_ROWS}).T


def markdown_table(df: pd.DataFrame, index_name: str = "", floatfmt: str = ".4f") -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join([index_name] + [str(c) for c in cols]) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for idx, *values in df.itertuples(index=True, name=None):  # keeps each column's dtype (ints stay ints)
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in values]
        lines.append("| " + " | ".join([str(idx)] + cells) + " |")
    return "\n".join(lines)


def leaderboard(per_image: dict[str, pd.DataFrame], kinds: dict[str, str] | None = None,
                metrics: tuple[str, ...] = ("dice", "iou", "hd95", "nsd"), n_boot: int = 10000) -> pd.DataFrame:
    """One row per model: mean of each metric over cases, and a bootstrap 95% CI of the mean Dice.

    ``per_image`` maps a model name to its per-image table (index: case id)."""
    from medseg.report.stats import bootstrap_ci

    rows = []
    for name, df in per_image.items():
        ci = bootstrap_ci(df["dice"], n_boot=n_boot)
        row = {"model": name, "kind": (kinds or {}).get(name, "model"), "n_cases": ci.n,
               "dice": ci.mean, "dice_ci_low": ci.low, "dice_ci_high": ci.high}
        row.update({m: float(df[m].mean()) for m in metrics if m != "dice" and m in df.columns})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
