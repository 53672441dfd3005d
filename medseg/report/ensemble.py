"""The ensemble report (``<ensemble dir>/report.md``): the predecessor-style leaderboard of every fold,
member and the ensemble, and the paired comparisons that tell a real gain from noise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from medseg.evaluation import EvaluationTable
from medseg.report.stats import ci_caveat, paired_comparison
from medseg.report.tables import markdown_table


class _Member(Protocol):  # medseg.pipelines.ensemble.Member, without importing the pipeline
    name: str
    path: object
    kind: str
    models: list


def _header(members: Sequence[_Member], split: str, method: str, weights) -> list[str]:
    w = (f", weights {', '.join(f'{m.name}={x:.3f}' for m, x in zip(members, weights))}"
         if weights is not None else "")
    return [f"# Ensemble leaderboard ({split} split)", "",
            f"Members: {', '.join(f'`{m.path}`' for m in members)}. Across members: **{method}**{w}.", "",
            "Dice is the mean over images with a bootstrap 95% CI (10,000 resamples of the cases).", ""]


def _gain_notes(per_image: Mapping[str, pd.DataFrame], members: Sequence[_Member]) -> list[str]:
    notes = []
    for mem in members:
        if mem.kind != "kfold":
            continue
        folds = [m.name for m in mem.models]
        mean_fold = float(np.mean([per_image[f]["dice"].mean() for f in folds]))
        ens = float(per_image[mem.name]["dice"].mean())
        notes.append(f"- **{mem.name}**: {len(folds)}-fold ensemble Dice {ens:.4f} vs mean fold {mean_fold:.4f} "
                     f"({ens - mean_fold:+.4f}).")
        best_fold = max(folds, key=lambda f: per_image[f]["dice"].mean())
        notes.append("- " + paired_comparison(per_image[best_fold]["dice"], per_image[mem.name]["dice"],
                                              best_fold, mem.name).sentence())
    if "ensemble" in per_image:
        best = max((m.name for m in members), key=lambda s: per_image[s]["dice"].mean())
        notes.append("- " + paired_comparison(per_image[best]["dice"], per_image["ensemble"]["dice"],
                                              best, "ensemble").sentence())
    return notes


def ensemble_report(board: pd.DataFrame, tables: Mapping[str, EvaluationTable], members: Sequence[_Member],
                    split: str, method: str, weights) -> str:
    """The Markdown of the ensemble report: leaderboard (with a caveat when CIs rest on few cases),
    then whether each ensemble beats its best part."""
    per_image = {name: t.per_image for name, t in tables.items()}
    lines = _header(members, split, method, weights)
    lines += [markdown_table(board.drop(columns=["kind"]).assign(kind=board["kind"]), "model"), ""]
    caveat = ci_caveat({str(k): int(n) for k, n in board["n_cases"].items()})
    if caveat:
        lines += [caveat, ""]
    notes = _gain_notes(per_image, members)
    if notes:
        lines += ["## Is the ensemble better?", "", *notes, ""]
    return "\n".join(lines)
