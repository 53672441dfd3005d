"""Per-image tables and the seed-style summary (max / min / mean) as Markdown."""

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
    for idx, row in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join([str(idx)] + cells) + " |")
    return "\n".join(lines)
