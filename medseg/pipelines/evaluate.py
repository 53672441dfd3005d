"""Evaluate a trained module on a split: per-image metrics, summary tables, overlays, report.md."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medseg.data.datamodule import SegmentationDataModule
from medseg.metrics.baselines import best_global_threshold
from medseg.metrics.overlap import METRIC_NAMES, overlap_metrics
from medseg.module import SegmentationModule
from medseg.report.plots import plot_overlay
from medseg.report.tables import markdown_table, summarize
from medseg.utils.io import save_with, write_text_atomic

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_split(module: SegmentationModule, dm: SegmentationDataModule, split: str):
    """Yield ``(case, probs (C,...), pred (K,...) bool, target (K,...) bool | None)`` per case."""
    module.eval()
    device = module.device
    for case in dm.cases[split]:
        image = torch.from_numpy(case.image)[None].to(device)
        probs = module.task.activation(module.predict_logits(image))
        pred = module.task.discretize(probs)[0].cpu()
        target = None
        if case.mask is not None:
            target = module.task.target_to_binary(torch.from_numpy(case.mask)[None].long())[0]
        yield case, probs[0].cpu(), pred, target


def evaluate_split(
    module: SegmentationModule,
    dm: SegmentationDataModule,
    out_dir: str | Path,
    split: str = "test",
    overlays: bool = True,
    baseline: str | None = None,
    title: str = "medseg evaluation",
) -> pd.DataFrame:
    """Score every case of ``split``; write ``per_image.csv``, ``per_class.csv`` (several classes),
    ``report.md`` and ``overlays/`` under ``out_dir``. Returns the per-image table."""
    out_dir = Path(out_dir)
    task = module.task
    rows, class_rows, keep = [], [], {}
    for case, _probs, pred, target in predict_split(module, dm, split):
        if target is None:
            continue
        roi = torch.from_numpy(case.roi)[None] if case.roi is not None else None
        m = overlap_metrics(pred[None], target[None], roi)  # (1, K)
        row = {"case_id": case.case_id}
        row.update({k: float(v[0].mean()) for k, v in m.items()})
        rows.append(row)
        for k, name in enumerate(task.class_names):
            class_rows.append({"case_id": case.case_id, "class": name,
                               **{mk: float(mv[0, k]) for mk, mv in m.items()}})
        if overlays and pred.ndim == 3:
            keep[case.case_id] = (case, pred.any(0).numpy(), target.any(0).numpy())
    if not rows:
        raise ValueError(f"split '{split}' has no labelled cases to evaluate")
    per_image = pd.DataFrame(rows).set_index("case_id")
    save_with(out_dir / "per_image.csv", lambda p: per_image.to_csv(p, float_format="%.6f"))
    per_class = pd.DataFrame(class_rows)
    if len(task.class_names) > 1:
        save_with(out_dir / "per_class.csv", lambda p: per_class.to_csv(p, index=False, float_format="%.6f"))

    overlay_paths = []
    if keep:
        ranked = per_image["dice"].sort_values(ascending=False)
        picks = {"best": ranked.index[0], "median": ranked.index[len(ranked) // 2], "worst": ranked.index[-1]}
        for label, cid in picks.items():
            case, pred, target = keep[cid]
            raw = dm.raw_case(cid)
            path = plot_overlay(raw.image, target, pred, out_dir / "overlays" / f"{label}_{cid}.png",
                                title=f"{label}: {cid}  Dice {per_image.loc[cid, 'dice']:.4f}")
            overlay_paths.append(path)

    base = None
    if baseline == "global_threshold":
        raw_cases = [dm.raw_case(c.case_id) for c in dm.cases[split]]
        base = best_global_threshold(raw_cases, channel=1)

    write_report(out_dir / "report.md", per_image, per_class, task.class_names, split, dm, base,
                 overlay_paths, title)
    return per_image


def write_report(path, per_image, per_class, class_names, split, dm, baseline, overlay_paths, title) -> Path:
    metrics = list(METRIC_NAMES)
    summary = summarize(per_image, metrics)
    lines = [f"# {title}", "",
             f"Split: **{split}** ({len(per_image)} images) of `{dm.root}`.", ""]
    if dm.use_roi and any(c.roi is not None for c in dm.cases[split]):
        lines += ["Metrics are computed inside each image's region of interest (the field-of-view "
                  "mask for retinal images: the standard protocol).", ""]
    lines += ["## Per image", "", markdown_table(per_image[metrics], "image"), "",
              "## Summary", "", markdown_table(summary, ""), ""]
    if len(class_names) > 1:
        by_class = per_class.groupby("class")[metrics].mean().reindex(class_names)
        lines += ["## Per class (mean over images)", "", markdown_table(by_class, "class"), ""]
    if baseline is not None:
        mean_dice = float(per_image["dice"].mean())
        lines += ["## Baseline: best global threshold", "",
                  f"The single threshold on the green channel ({baseline['polarity']} "
                  f"{baseline['threshold']:.4f}) that maximises mean Dice on this split, chosen with the "
                  f"labels (an optimistic baseline): Dice **{baseline['dice']:.4f}**. "
                  f"Model: **{mean_dice:.4f}** ({mean_dice - baseline['dice']:+.4f}).", ""]
    if overlay_paths:
        lines += ["## Overlays (best, median, worst)", ""]
        lines += [f"![{p.stem}](overlays/{p.name})" for p in overlay_paths] + [""]
    write_text_atomic(path, "\n".join(lines))
    return Path(path)


def summary_dict(per_image: pd.DataFrame) -> dict[str, float]:
    return {f"test/{m}": float(np.nanmean(per_image[m])) for m in METRIC_NAMES if m in per_image}
