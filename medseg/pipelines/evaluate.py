"""Evaluate a model (or any probability source) on a split: per-image and per-class metrics, summary
tables, overlays, report.md.

The scoring works on a *probability function* ``case -> probabilities (C, *spatial)``, so one model,
a model with test-time augmentation and an ensemble of models are evaluated by the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medseg.data.case import Case
from medseg.data.datamodule import SegmentationDataModule
from medseg.inference.tta import tta_probs
from medseg.metrics.baselines import best_global_threshold
from medseg.metrics.case import (
    EXTRA_METRIC_NAMES,
    compute_case_metrics,
    metric_names,
    metrics_by_name,
    resolve_metrics,
)
from medseg.metrics.overlap import METRIC_NAMES
from medseg.metrics.threshold import best_threshold
from medseg.module import SegmentationModule
from medseg.report.plots import plot_overlay, plot_overlay_3d
from medseg.report.tables import markdown_table, summarize
from medseg.tasks import Task
from medseg.utils.io import save_with, write_text_atomic

log = logging.getLogger(__name__)

ProbsFn = Callable[[Case], torch.Tensor]
#: metrics selectable by name besides the overlap ones (the objects are in medseg.metrics.case)
EXTRA_METRICS = EXTRA_METRIC_NAMES


def default_metrics(task: Task, metrics: Any = None) -> tuple[str, ...]:
    """Names of the metrics besides the overlap ones that ``metrics`` (default: ``conf/metrics/default.yaml``,
    surface metrics for every task, AUC and SSIM for binary tasks only) scores for ``task``."""
    return tuple(n for n in metric_names(metrics, task.kind) if n not in METRIC_NAMES)


def chosen_metrics(value: Any) -> Any:
    """A metric selection: ``None`` -> the task's defaults, ``[]`` -> overlap metrics only, names are
    checked (an unknown one is an error), a ``metrics`` config group node becomes objects
    (:func:`medseg.metrics.case.resolve_metrics`)."""
    if value is None:
        return None
    if not hasattr(value, "items") and all(isinstance(v, str) for v in value):
        metrics_by_name(value)  # checks the names
        return tuple(value)
    return resolve_metrics(value)


def model_probs(module: SegmentationModule, tta: bool | dict = False) -> ProbsFn:
    """``case -> probabilities (C, *spatial)`` of one model, with optional TTA (``True`` or
    ``{"flips": bool, "rot90": bool}``, a plain dict or a Hydra ``DictConfig``)."""
    opts = dict(tta) if isinstance(tta, Mapping) else {}

    @torch.no_grad()
    def probs(case: Case) -> torch.Tensor:
        module.eval()
        image = torch.from_numpy(case.image)[None].to(module.device)
        fn = lambda x: module.task.activation(module.predict_logits(x))
        out = tta_probs(fn, image, **opts) if tta else fn(image)
        return out[0].cpu()

    return probs


def foreground_probs(task: Task, probs: torch.Tensor) -> torch.Tensor:
    """Probabilities ``(C, ...)`` -> one map per scored class ``(K, ...)`` (multi-class drops background)."""
    return probs[1:] if task.kind == "multiclass" else probs


def case_target(task: Task, case: Case) -> torch.Tensor | None:
    if case.mask is None:
        return None
    mask = torch.from_numpy(np.asarray(case.mask))[None]
    if task.kind == "multilabel":  # already (K, ...) multi-hot: no int64 copy (29 x 2048^2 would be 1 GB)
        return mask[0].bool()
    return task.target_to_binary(mask.long())[0]


@torch.no_grad()
def predict_split(module: SegmentationModule, dm: SegmentationDataModule, split: str):
    """Yield ``(case, probs (C,...), pred (K,...) bool, target (K,...) bool | None)`` per case."""
    fn = model_probs(module)
    for case in dm.cases[split]:
        probs = fn(case)
        yield case, probs, module.task.discretize(probs[None])[0], case_target(module.task, case)


def choose_threshold(task: Task, probs_fn: ProbsFn, cases: Sequence[Case]) -> tuple[float, float]:
    """The threshold maximising mean Dice on ``cases`` (binary / multi-label tasks)."""
    def gen():
        for c in cases:
            t = case_target(task, c)
            if t is not None:
                roi = torch.from_numpy(c.roi) if c.roi is not None else None
                yield foreground_probs(task, probs_fn(c)), t, roi
    return best_threshold(gen())


def score_case(
    task: Task, case: Case, probs: torch.Tensor, threshold: float, metrics: Any = None, nsd_tolerance: float = 1.0,
) -> tuple[dict[str, np.ndarray], torch.Tensor, torch.Tensor]:
    """Per-class metrics ``{name: (K,)}`` of one labelled case, plus the boolean prediction and target.
    ``metrics``: metric objects, names or ``None`` (defaults), as :func:`medseg.metrics.case.resolve_metrics`
    takes them; ``nsd_tolerance`` applies to names and ``None`` only."""
    target = case_target(task, case)
    pred = task.discretize(probs[None], threshold)[0]
    m = compute_case_metrics(resolve_metrics(metrics, nsd_tolerance), task.kind, pred=pred, target=target,
                             probs=foreground_probs(task, probs), roi=case.roi, spacing=case.spacing)
    return m, pred, target


def case_rows(task: Task, case_id: str, m: dict[str, np.ndarray]) -> tuple[dict, list[dict]]:
    """One per-image row (means over classes, ``nan`` ignored) and one row per class."""
    with np.errstate(all="ignore"):
        row = {"case_id": case_id,
               **{k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in m.items()}}
    return row, [{"case_id": case_id, "class": name, **{mk: float(mv[k]) for mk, mv in m.items()}}
                 for k, name in enumerate(task.class_names)]


def evaluate_cases(
    probs_fn: ProbsFn, task: Task, cases: Sequence[Case], threshold: float,
    metrics: Iterable[str] | None = None, nsd_tolerance: float = 1.0,
    on_case: Callable[[Case, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score labelled ``cases``; returns ``(per_image, per_class)`` tables. Per-image values are
    means over classes (``nan`` ignored); ``on_case(case, probs, pred, target)`` sees every case."""
    rows, class_rows = [], []
    for case in cases:
        if case.mask is None:
            continue
        probs = probs_fn(case)
        m, pred, target = score_case(task, case, probs, threshold, metrics, nsd_tolerance)
        row, per_class_rows = case_rows(task, case.case_id, m)
        rows.append(row)
        class_rows.extend(per_class_rows)
        if on_case is not None:
            on_case(case, probs, pred, target)
    if not rows:
        raise ValueError("no labelled cases to evaluate")
    return pd.DataFrame(rows).set_index("case_id"), pd.DataFrame(class_rows)


def save_probs(path: Path, probs: torch.Tensor, max_size: int | None = None) -> None:
    """Probabilities as float16 ``.npy`` (enough for thresholds and ensemble weights). With
    ``max_size``, maps whose longest side exceeds it are area-downsampled first (OOF maps of 2048x2048
    x 29 classes would otherwise take 240 MB per image)."""
    if max_size and max(probs.shape[1:]) > max_size:
        scale = max_size / max(probs.shape[1:])
        size = [max(1, round(s * scale)) for s in probs.shape[1:]]
        probs = torch.nn.functional.interpolate(probs[None].float(), size=size, mode="area")[0]
    save_with(path, lambda p: np.save(p, probs.numpy().astype(np.float16)))


PREDICTIONS = "predictions"


def save_prediction(path: Path, pred: torch.Tensor | np.ndarray, threshold: float | None = None) -> Path:
    """A boolean prediction ``(K, *spatial)`` as ``<case_id>.npz``: one bit per class and pixel
    (``np.packbits``), zip-compressed, written atomically; :func:`load_prediction` reads it back.
    A 29 x 2048 x 2048 multi-label mask is 15 MB of bits, far less once compressed."""
    mask = np.asarray(pred, dtype=bool)
    arrays = {"bits": np.packbits(mask.reshape(-1)), "shape": np.asarray(mask.shape, np.int64),
              "threshold": np.asarray(np.nan if threshold is None else threshold, np.float64)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to the tmp name
            np.savez_compressed(fh, **arrays)

    return save_with(path, write)


def load_prediction(path: str | Path) -> tuple[np.ndarray, float | None]:
    """``(mask (K, *spatial) bool, threshold or None)`` of a file written by :func:`save_prediction`.
    Raises :class:`DataError` naming the file when it is unreadable or inconsistent."""
    import zipfile

    from medseg.errors import DataError

    try:
        with np.load(path) as z:
            bits, shape, thr = z["bits"], tuple(int(s) for s in z["shape"]), float(z["threshold"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable saved prediction ({type(exc).__name__}: {exc}); delete it or "
                        "rerun the evaluation") from exc
    n = int(np.prod(shape))
    if bits.size != (n + 7) // 8:
        raise DataError(f"{path}: {bits.size} bytes of bits for shape {shape}; the file is damaged")
    return np.unpackbits(bits, count=n).view(bool).reshape(shape), (None if thr != thr else thr)


def evaluate_split(
    module: SegmentationModule,
    dm: SegmentationDataModule,
    out_dir: str | Path,
    split: str = "test",
    overlays: bool = True,
    baseline: str | None = None,
    title: str = "medseg evaluation",
    *,
    threshold: float | str | None = None,
    tta: bool | dict = False,
    metrics: Iterable[str] | None = None,
    nsd_tolerance: float = 1.0,
    probs_fn: ProbsFn | None = None,
    probs_dir: str | Path | None = None,
    probs_max_size: int | None = None,
    predictions_dir: str | Path | None = None,
    on_case: Callable[[Case, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> pd.DataFrame:
    """Score every case of ``split``; write ``per_image.csv``, ``per_class.csv``, ``report.md`` and
    ``overlays/`` under ``out_dir``. Returns the per-image table.

    Args:
        threshold: decision threshold for binary / multi-label tasks: a number, ``None`` (the task's,
            0.5 by default) or ``"auto"`` (the one maximising mean Dice on the ``val`` split; reported).
        tta: test-time augmentation (see :func:`medseg.inference.tta.tta_probs`).
        metrics: extra metrics besides the overlap ones: any of ``auc, ssim, hd95, nsd``; ``None``:
            :func:`default_metrics` of the task.
        nsd_tolerance: surface Dice tolerance in mm (pixels when cases have no spacing).
        probs_fn: probability source replacing ``module`` (an ensemble); ``module.task`` still applies.
        probs_dir: also save every case's probabilities there as float16 ``<case_id>.npy``.
        probs_max_size: downsample saved probabilities to at most this many pixels per side.
        predictions_dir: also save every scored case's boolean prediction there as
            ``<case_id>.npz`` (:func:`save_prediction`; ``medseg-view`` shows them without predicting).
        on_case: also called with ``(case, probs, pred, target)`` for every scored case (medseg-kfold
            writes its out-of-fold records with it: :func:`medseg.select.oof.oof_writer`).
    """
    out_dir = Path(out_dir)
    task = module.task
    fn = probs_fn or model_probs(module, tta)
    thr_note = None
    if threshold == "auto" and task.kind != "multiclass":
        thr, val_dice = choose_threshold(task, fn, dm.cases["val"])
        thr_note = f"Threshold **{thr:.2f}** chosen on the validation split (mean Dice {val_dice:.4f} there)."
        log.info("eval.threshold=auto: %.2f (val Dice %.4f)", thr, val_dice)
    else:
        thr = task.threshold if threshold in (None, "auto") else float(threshold)
        if task.kind != "multiclass":
            thr_note = f"Threshold {thr:.2f} (fixed)."

    def each_case(case, probs, pred, target):
        if probs_dir is not None:
            save_probs(Path(probs_dir) / f"{case.case_id}.npy", probs, probs_max_size)
        if predictions_dir is not None:
            save_prediction(Path(predictions_dir) / f"{case.case_id}.npz", pred, thr)
        if on_case is not None:
            on_case(case, probs, pred, target)

    try:
        per_image, per_class = evaluate_cases(fn, task, dm.cases[split], thr, metrics, nsd_tolerance, each_case)
    except ValueError as exc:
        raise ValueError(f"split '{split}' has no labelled cases to evaluate") from exc
    per_image.attrs["threshold"] = thr
    save_tables(out_dir, per_image, per_class)
    overlay_paths = write_overlays(fn, task, dm, split, per_image, out_dir / "overlays", thr) if overlays else []

    base = None
    if baseline == "global_threshold":
        raw_cases = [dm.raw_case(c.case_id) for c in dm.cases[split]]
        base = best_global_threshold(raw_cases, channel=1)

    write_report(out_dir / "report.md", per_image, per_class, task.class_names, split, dm, base,
                 overlay_paths, title, thr_note)
    return per_image


def save_tables(out_dir: str | Path, per_image: pd.DataFrame, per_class: pd.DataFrame) -> None:
    """``per_image.csv`` and ``per_class.csv``: the files ``medseg-report`` reads."""
    out_dir = Path(out_dir)
    save_with(out_dir / "per_image.csv", lambda p: per_image.to_csv(p, float_format="%.6f"))
    save_with(out_dir / "per_class.csv", lambda p: per_class.to_csv(p, index=False, float_format="%.6f"))


def write_overlays(fn: ProbsFn, task: Task, dm: SegmentationDataModule, split: str, per_image: pd.DataFrame,
                   out_dir: Path, threshold: float) -> list[Path]:
    """Overlays of the best, median and worst case. Their predictions are recomputed here rather than
    kept from scoring, so memory stays bounded on thousands of 2048x2048 images or 3D volumes."""
    by_id = {c.case_id: c for c in dm.cases[split]}
    paths = []
    for label, cid in pick_cases(per_image["dice"]).items():
        case = by_id[cid]
        pred = task.discretize(fn(case)[None], threshold)[0].any(0).numpy()
        target = case_target(task, case).any(0).numpy()
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


def pick_cases(dice: pd.Series) -> dict[str, str]:
    """Best, median and worst case by Dice (the report's overlays)."""
    ranked = dice.sort_values(ascending=False)
    return {"best": ranked.index[0], "median": ranked.index[len(ranked) // 2], "worst": ranked.index[-1]}


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of a per-image table: the built-in ones in their usual order, then any other
    numeric column (a metric added through ``conf/metrics/``)."""
    known = [m for m in (*METRIC_NAMES, *EXTRA_METRICS) if m in df.columns]
    extra = [c for c in df.select_dtypes("number").columns if c not in known and c not in ("case_id", "class")]
    return known + extra


def write_report(path, per_image, per_class, class_names, split, dm, baseline, overlay_paths, title,
                 threshold_note: str | None = None) -> Path:
    metrics = metric_columns(per_image)
    summary = summarize(per_image, metrics)
    lines = [f"# {title}", "",
             f"Split: **{split}** ({len(per_image)} images) of `{dm.root}`.", ""]
    if threshold_note:
        lines += [threshold_note, ""]
    if dm.use_roi and any(c.roi is not None for c in dm.cases[split]):
        lines += [("Metrics are computed inside each image's region of interest (the field-of-view "
                  "mask for retinal images: the standard protocol)."), ""]
    notes = [f"{name}: {n}" for name, cases in dm.cases.items() for c in cases
             if (n := (getattr(c, "meta", None) or {}).get("data_note"))]
    if notes:  # fallbacks the reader took in any split (e.g. a missing FOV mask estimated from the image)
        lines += ["## Data notes", "", *[f"- {n}" for n in notes], ""]
    lines += ["## Per image", "", markdown_table(per_image[metrics], "image"), "",
              "## Summary", "", markdown_table(summary, ""), ""]
    if len(class_names) > 1:
        by_class = per_class.groupby("class")[metrics].mean().reindex(class_names)
        lines += ["## Per class (mean over images)", "", markdown_table(by_class, "class"), ""]
    if baseline is not None:
        mean_dice = float(per_image["dice"].mean())
        lines += ["## Baseline: best global threshold", "",
                  (f"The single threshold on the green channel ({baseline['polarity']} "
                  f"{baseline['threshold']:.4f}) that maximises mean Dice on this split, chosen with the "
                  f"labels (an optimistic baseline): Dice **{baseline['dice']:.4f}**. "
                  f"Model: **{mean_dice:.4f}** ({mean_dice - baseline['dice']:+.4f})."), ""]
    if overlay_paths:
        lines += ["## Overlays (best, median, worst)", ""]
        lines += [f"![{p.stem}](overlays/{p.name})" for p in overlay_paths] + [""]
    write_text_atomic(path, "\n".join(lines))
    return Path(path)


def summary_dict(per_image: pd.DataFrame) -> dict[str, float]:
    out = {f"test/{m}": float(np.nanmean(per_image[m])) for m in metric_columns(per_image)}
    if "threshold" in per_image.attrs:
        out["threshold"] = float(per_image.attrs["threshold"])
    return out
