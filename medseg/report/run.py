"""The report of one evaluation (``report.md`` and ``overlays/`` of a run or ``medseg-eval`` folder),
rendered from an :class:`~medseg.evaluation.EvaluationTable`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medseg.data.datamodule import SegmentationDataModule
from medseg.evaluation import Decide, EvaluationTable, ProbsFn, case_target, threshold_decision
from medseg.metrics.baselines import best_global_threshold
from medseg.report.plots import plot_overlay, plot_overlay_3d
from medseg.report.tables import markdown_table, summarize
from medseg.tasks import Task
from medseg.utils.io import write_text_atomic


def pick_cases(dice: pd.Series) -> dict[str, str]:
    """Best, median and worst case by Dice (the report's overlays), each a different case: one case
    gives ``best`` only, two give ``best`` and ``worst``."""
    ranked = dice.sort_values(ascending=False)
    n = len(ranked)
    if n == 0:
        return {}
    if n == 1:
        return {"best": ranked.index[0]}
    picks = {"best": ranked.index[0], "median": ranked.index[n // 2], "worst": ranked.index[-1]}
    return picks if n >= 3 else {"best": picks["best"], "worst": picks["worst"]}


def write_overlays(fn: ProbsFn, task: Task, dm: SegmentationDataModule, split: str, per_image: pd.DataFrame,
                   out_dir: Path, decide: Decide) -> list[Path]:
    """Overlays of the best, median and worst case, their masks by ``decide`` (the decision the table
    scored). Their predictions are recomputed here rather than kept from scoring, so memory stays
    bounded on thousands of 2048x2048 images or 3D volumes."""
    by_id = {c.case_id: c for c in dm.cases[split]}
    paths = []
    for label, cid in pick_cases(per_image["dice"]).items():
        case = by_id[cid]
        pred = decide(fn(case)).any(0).numpy()
        labels = case_target(task, case)
        if labels is None:  # only labelled cases are scored, so only they are picked
            continue
        target = labels.any(0).numpy()
        if pred.ndim not in (2, 3):
            continue
        raw = dm.raw_case(cid)
        image = raw.image if raw.image.shape[1:] == pred.shape else case.image
        out, title = out_dir / f"{label}_{cid}.png", f"{label}: {cid}  Dice {per_image.loc[cid, 'dice']:.4f}"
        if pred.ndim == 2:
            paths.append(plot_overlay(image, target, pred, out, title=title))
        else:  # volumes read from NIfTI keep the file's (x, y, z) order unless the reader says otherwise
            nifti = case.meta.get("affine") is not None and case.meta.get("nifti_axes") is None
            paths.append(plot_overlay_3d(image, target, pred, out, title=title, nifti_order=nifti))
    return paths


def global_threshold_baseline(dm: SegmentationDataModule, split: str) -> dict:
    """The best single green-channel threshold on ``split`` (``data.baseline: global_threshold``)."""
    return best_global_threshold([dm.raw_case(c.case_id) for c in dm.cases[split]], channel=1)


def baseline_lines(per_image: pd.DataFrame, baseline: dict) -> list[str]:
    mean_dice = float(per_image["dice"].mean())
    return ["## Baseline: best global threshold", "",
            (f"The single threshold on the green channel ({baseline['polarity']} "
             f"{baseline['threshold']:.4f}) that maximises mean Dice on this split, chosen with the "
             f"labels (an optimistic baseline): Dice **{baseline['dice']:.4f}**. "
             f"Model: **{mean_dice:.4f}** ({mean_dice - baseline['dice']:+.4f})."), ""]


def overlay_lines(overlay_paths: list[Path]) -> list[str]:
    if not overlay_paths:
        return []
    labels = ", ".join(p.stem.split("_", 1)[0] for p in overlay_paths)
    return [f"## Overlays ({labels})", "", *[f"![{p.stem}](overlays/{p.name})" for p in overlay_paths], ""]


def pooled_lines(table: EvaluationTable) -> list[str]:
    """The dataset-level section: metrics pooled over every ROI pixel of the split."""
    if table.pooled is None or table.pooled.empty:
        return []
    bound = float(np.nanmax(table.pooled["auc_error_bound"])) if "auc_error_bound" in table.pooled else float("nan")
    return ["## Dataset level (pooled over all pixels)", "",
            ("Confusion counts summed over every pixel inside the region of interest of all "
             f"{len(table.per_image)} images, then F1, sensitivity, specificity and accuracy computed once; "
             "AUC from the pooled probabilities. This is how the DRIVE / CHASE_DB1 / STARE papers report their "
             "tables; the tables above are medseg's per-image convention (each image scored, then averaged), "
             "so the two differ."
             + (f" The AUC comes from 10,000-bin histograms, within {bound:.1e} of the exact pixel AUC."
                if bound == bound else "")), "",
            markdown_table(table.pooled, "class"), ""]


def report_markdown(table: EvaluationTable, class_names: list[str], title: str, root: str | Path,
                    baseline: dict | None = None, overlay_paths: Sequence[Path] = ()) -> str:
    """The Markdown of ``report.md``: notes, per-image table, summary, per class, baseline, overlays."""
    per_image, metrics = table.per_image, table.metrics
    lines = [f"# {title}", "", f"Split: **{table.split}** ({len(per_image)} images) of `{root}`.", ""]
    lines += [s for note in (table.threshold_note, table.roi_note) if note for s in (note, "")]
    if table.data_notes:  # fallbacks the reader took in any split (e.g. a missing FOV mask estimated from the image)
        lines += ["## Data notes", "", *[f"- {n}" for n in table.data_notes], ""]
    lines += ["## Per image", "", markdown_table(per_image[metrics], "image"), "",
              "## Summary (per-image metrics over the images)", "",
              markdown_table(summarize(per_image, metrics), ""), ""]
    lines += pooled_lines(table)
    if len(class_names) > 1:
        by_class = table.per_class.groupby("class")[metrics].mean().reindex(class_names)
        lines += ["## Per class (mean over images)", "", markdown_table(by_class, "class"), ""]
    if baseline is not None:
        lines += baseline_lines(per_image, baseline)
    return "\n".join(lines + overlay_lines(list(overlay_paths)))


def write_run_report(out_dir: str | Path, table: EvaluationTable, task: Task, dm: SegmentationDataModule,
                     probs_fn: ProbsFn, title: str = "medseg evaluation", overlays: bool = True,
                     baseline: str | None = None, decide: Decide | None = None) -> Path:
    """``report.md`` (and ``overlays/`` with ``overlays``) of ``table`` under ``out_dir``;
    ``baseline="global_threshold"`` adds the best-global-threshold section. ``decide``: the decision
    the table scored, which the overlays show (default: the table's threshold)."""
    out_dir = Path(out_dir)
    decide = decide or threshold_decision(task, table.threshold)  # None: the task's
    paths = (write_overlays(probs_fn, task, dm, table.split, table.per_image, out_dir / "overlays", decide)
             if overlays else [])
    base = global_threshold_baseline(dm, table.split) if baseline == "global_threshold" else None
    text = report_markdown(table, list(task.class_names), title, dm.root, base, paths)
    write_text_atomic(out_dir / "report.md", text)
    return out_dir / "report.md"
