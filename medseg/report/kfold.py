"""The k-fold report (``<kfold dir>/report.md``): out-of-fold Dice, the folds, and the test split's
folds against their ensemble (details in ``ensemble/report.md``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medseg.report.tables import markdown_table


def write_kfold_report(kfold_dir: str | Path, task_name: str, oof: pd.DataFrame, folds: pd.DataFrame,
                       board: pd.DataFrame) -> str:
    """The Markdown of the k-fold report (the caller writes it last, once everything it sums up exists).

    Args:
        kfold_dir: the k-fold folder (its name is the fold ensemble's row in ``board``).
        oof: every training-pool case's out-of-fold per-image row.
        folds: per fold ``n_val``, ``oof_dice``, ``test_dice``.
        board: the test-split leaderboard of the folds and their ensemble (``medseg-ensemble``'s)."""
    name, n = Path(kfold_dir).name, len(folds)
    fold_dice = board.loc[board["kind"] == "fold", "dice"].mean()
    lines = [f"# {task_name}: {n}-fold cross-validation", "",
             (f"Out-of-fold Dice over all {len(oof)} training-pool cases: **{oof['dice'].mean():.4f}** "
              "(each case scored by the fold that did not train on it)."), "",
             "## Folds", "", markdown_table(folds, folds.index.name or ""), "",
             "## Test split: folds and their ensemble", "",
             (f"Mean fold Dice {fold_dice:.4f}; {n}-fold ensemble (mean of probabilities) Dice "
              f"**{board.loc[name, 'dice']:.4f}**. Details and CIs: [ensemble/report.md](ensemble/report.md)."), "",
             "Test-split overlays of each fold: `fold_<k>/overlays/` (and `medseg-report` on this folder).", ""]
    return "\n".join(lines)
