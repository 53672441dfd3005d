"""``medseg-report``: one report comparing runs, folds and ensembles (report.md, report.html, CSVs).

A *model* here is any folder holding a ``per_image.csv`` (written by training, ``medseg-eval``,
``medseg-kfold`` and ``medseg-ensemble``). Given a run folder, an evaluation folder, an ensemble
folder (``models/*/``) or a k-fold folder (``ensemble/models/*/``), :func:`discover` finds them.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medseg.data.formats.brats import REGIONS as BRATS_REGIONS
from medseg.errors import DataError
from medseg.evaluation.table import EvaluationTable
from medseg.report.html import render_html, render_markdown
from medseg.report.plots import plot_class_bars, plot_loss_curve
from medseg.report.stats import ci_caveat, paired_comparison
from medseg.report.tables import leaderboard, summarize
from medseg.utils.io import save_with, write_text_atomic

log = logging.getLogger(__name__)

METRICS = ("dice", "iou", "accuracy", "precision", "recall", "specificity", "auc", "ssim", "hd95", "nsd")


@dataclass
class ModelResult:
    name: str
    folder: Path
    per_image: pd.DataFrame
    per_class: pd.DataFrame | None
    kind: str = "model"
    curves: list[Path] = field(default_factory=list)  # metrics.csv files (training curves)
    overlays: list[Path] = field(default_factory=list)
    identity: str | None = None  # EvaluationTable.identity(): the same model scored in two folders
    roi_note: str | None = None


def _load(name: str, folder: Path, kind: str = "model", curves=(), run: Path | None = None) -> ModelResult:
    """One model's tables; its overlays are its folder's, else those of the one run it was scored from
    (a fold of a k-fold or ensemble folder: the fold run drew them on the same split)."""
    table = EvaluationTable.load(folder)
    own_curve = [folder / "metrics.csv"] if (folder / "metrics.csv").is_file() else []
    overlays = sorted((folder / "overlays").glob("*.png")) or _run_overlays(table, run)
    per_class = table.per_class if len(table.per_class.columns) else None
    return ModelResult(name, folder, table.per_image, per_class, kind, own_curve + list(curves), overlays,
                       _identity(table, name), table.roi_note)


def _identity(table: EvaluationTable, name: str) -> str:
    """``table.identity()``, or for folders that predate ``evaluation.json`` the model's name and a
    fingerprint of its per-case scores (a k-fold folder and an ensemble built on it name their folds
    alike and score them identically)."""
    ident = table.identity()
    if ident is not None:
        return ident
    dice = table.per_image["dice"].round(6)
    digest = hashlib.sha1(pd.util.hash_pandas_object(dice, index=True).to_numpy().tobytes()).hexdigest()
    return f"{name}:scores:{digest}"


def _run_overlays(table: EvaluationTable, run: Path | None) -> list[Path]:
    runs = table.source.get("runs") or []
    folder = Path(runs[0]) if len(runs) == 1 else run
    if folder is None or not (folder / "overlays").is_dir():
        return []
    if (folder / "evaluation.json").is_file():
        drawn = EvaluationTable.load(folder)
        if drawn.split != table.split or (table.source and drawn.identity() != table.identity()):
            return []  # that run drew another split, or another model (TTA, threshold) than this one
    return sorted((folder / "overlays").glob("*.png"))


def discover(run: str | Path) -> list[ModelResult]:
    """The models of one command-line argument (see module docstring)."""
    run = Path(run).expanduser()
    if (run / "per_image.csv").is_file():
        return [_load(run.name, run)]
    for models_dir, base in ((run / "models", run), (run / "ensemble" / "models", run / "ensemble")):
        if models_dir.is_dir():
            kinds = {}
            if (base / "leaderboard.csv").is_file():
                lb = pd.read_csv(base / "leaderboard.csv", index_col=0)
                kinds = {str(k).replace("/", "_"): v for k, v in lb["kind"].items()}
            out = []
            for d in sorted(p for p in models_dir.iterdir() if (p / "per_image.csv").is_file()):
                fold_run = run / f"fold_{d.name.rsplit('_fold_', 1)[-1]}" if "_fold_" in d.name else None
                curves = [fold_run / "metrics.csv"] if fold_run and (fold_run / "metrics.csv").is_file() else []
                out.append(_load(d.name, d, kinds.get(d.name, "model"), curves, fold_run))
            if out:
                return out
    raise DataError(f"{run}: no per_image.csv here, nor in models/ or ensemble/models/ "
                    "(give a run, evaluation, ensemble or k-fold folder)")


def _unique_names(models: list[ModelResult]) -> None:
    seen: dict[str, int] = {}
    for m in models:
        if m.name in seen:
            seen[m.name] += 1
            m.name = f"{m.name}#{seen[m.name]}"
        else:
            seen[m.name] = 0


def deduplicate(models: list[ModelResult]) -> tuple[list[ModelResult], list[tuple[ModelResult, ModelResult]]]:
    """Each model once: the first of those with the same identity (a k-fold folder and an ensemble
    built on it both hold the folds and the fold ensemble). Returns ``(kept, [(dropped, kept as)])``."""
    kept: dict[str, ModelResult] = {}
    dropped = []
    for m in models:
        key = m.identity or f"folder:{m.folder.resolve()}"
        if key in kept:
            dropped.append((m, kept[key]))
        else:
            kept[key] = m
    return list(kept.values()), dropped


def pairwise_table(models: list[ModelResult], metric: str = "dice", n_boot: int = 10000) -> pd.DataFrame:
    """Paired comparisons (``b - a`` on shared cases) for every pair of distinct models that share cases."""
    rows = []
    for a, b in itertools.combinations(models, 2):
        if (a.identity is not None and a.identity == b.identity) or a.folder.resolve() == b.folder.resolve():
            continue  # never a model against itself
        if len(a.per_image.index.intersection(b.per_image.index)) == 0:
            continue
        c = paired_comparison(a.per_image[metric], b.per_image[metric], a.name, b.name, n_boot=n_boot)
        rows.append({"a": a.name, "b": b.name, "n_cases": c.diff.n, f"{metric}_diff": c.diff.mean,
                     "ci_low": c.diff.low, "ci_high": c.diff.high, "p_bootstrap": c.p_bootstrap,
                     "p_wilcoxon": c.p_wilcoxon, "sentence": c.sentence(metric.capitalize())})
    return pd.DataFrame(rows)


def collect_models(runs: list[str | Path]) -> tuple[list[ModelResult], list[tuple[ModelResult, ModelResult]]]:
    """Every distinct model of the command-line folders, uniquely named, and the duplicates dropped."""
    models, dropped = deduplicate([m for r in runs for m in discover(r)])
    _unique_names(models)
    return models, dropped


def save_tables(out_dir: Path, board: pd.DataFrame, pairs: pd.DataFrame, models: list[ModelResult]) -> None:
    """``leaderboard.csv``, ``pairwise.csv`` and the long ``per_image.csv`` / ``per_class.csv``."""
    save_with(out_dir / "leaderboard.csv", lambda p: board.to_csv(p, float_format="%.6f"))
    save_with(out_dir / "pairwise.csv", lambda p: pairs.to_csv(p, index=False, float_format="%.6f"))
    long_img = pd.concat([m.per_image.assign(model=m.name) for m in models]).rename_axis("case_id").reset_index()
    save_with(out_dir / "per_image.csv", lambda p: long_img.to_csv(p, index=False, float_format="%.6f"))
    class_tables = [m.per_class.assign(model=m.name) for m in models if m.per_class is not None]
    if class_tables:
        long_cls = pd.concat(class_tables)
        save_with(out_dir / "per_class.csv", lambda p: long_cls.to_csv(p, index=False, float_format="%.6f"))


def build_report(runs: list[str | Path], out_dir: str | Path, title: str = "medseg report",
                 metric: str = "dice", n_boot: int = 10000) -> Path:
    """Write ``report.md``, ``report.html`` (self-contained), ``leaderboard.csv``, ``pairwise.csv``,
    ``per_image.csv`` and ``per_class.csv`` (long format, one block per model) under ``out_dir``."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    models, dropped = collect_models(runs)
    board = leaderboard({m.name: m.per_image for m in models}, {m.name: m.kind for m in models},
                        metrics=tuple(x for x in METRICS if any(x in m.per_image for m in models)), n_boot=n_boot)
    board = board.sort_values("dice", ascending=False)
    pairs = pairwise_table(models, metric, n_boot)
    save_tables(out_dir, board, pairs, models)
    blocks = _head_blocks(title, runs, models, dropped, board, n_boot)
    blocks += _kfold_notes(models)
    blocks += _per_model_blocks(models)
    blocks += _class_blocks(models, fig_dir, metric)
    blocks += _pair_blocks(pairs)
    blocks += _figure_blocks(models, fig_dir)
    write_text_atomic(out_dir / "report.md", render_markdown(blocks, out_dir))
    write_text_atomic(out_dir / "report.html", render_html(title, blocks))
    return out_dir / "report.html"


def _head_blocks(title: str, runs: list, models: list[ModelResult], dropped: list, board: pd.DataFrame,
                 n_boot: int) -> list:
    """Title, what was compared, the leaderboard and its caveats: the first screen."""
    blocks: list = [("h1", title),
                    ("p", (f"{len(models)} model(s) from {', '.join(f'`{r}`' for r in runs)}. Dice is the mean "
                          f"over cases with a bootstrap 95% CI ({n_boot:,} resamples of the cases)."))]
    if dropped:
        blocks.append(("p", "Counted once (the same model found in two folders): " + "; ".join(
            f"`{d.folder}` = **{k.name}**" for d, k in dropped) + "."))
    roi_notes = list(dict.fromkeys(m.roi_note for m in models if m.roi_note))
    blocks += [("p", n) for n in roi_notes]
    blocks += [("h2", "Leaderboard"), ("table", board, "model")]
    caveat = ci_caveat({str(k): int(n) for k, n in board["n_cases"].items()})
    return blocks + ([("p", caveat)] if caveat else [])


def _pair_blocks(pairs: pd.DataFrame) -> list:
    """The paired comparisons: the table, then one sentence per pair (after the leaderboard and the
    per-model tables, so they never fill the first screen)."""
    if not len(pairs):
        return []
    return [("h2", "Paired comparisons"),
            ("p", ("Each pair on the cases both scored: mean difference b - a with a paired bootstrap "
                   "95% CI and Wilcoxon signed-rank p-value. A gap whose CI contains 0 is noise.")),
            ("table", pairs.drop(columns=["sentence"]).set_index(["a", "b"]), "a, b"),
            ("details", f"the {len(pairs)} comparison(s) in words", [("p", s) for s in pairs["sentence"]])]


def _kfold_notes(models: list[ModelResult]) -> list:
    folds = [m for m in models if m.kind == "fold"]
    ensembles = [m for m in models if m.kind.endswith("-fold ensemble")]
    if not folds or not ensembles:
        return []
    mean_fold = float(np.mean([m.per_image["dice"].mean() for m in folds]))
    out = [("h3", "Fold ensemble vs folds")]
    for e in ensembles:
        d = float(e.per_image["dice"].mean())
        out.append(("p", (f"**{e.name}** ({e.kind}): Dice {d:.4f} vs mean fold {mean_fold:.4f} "
                         f"({d - mean_fold:+.4f}); best fold {max(m.per_image['dice'].mean() for m in folds):.4f}.")))
    return out


def _per_model_blocks(models: list[ModelResult]) -> list:
    out: list[tuple] = [("h2", "Per image")]
    for m in models:
        cols = [c for c in METRICS if c in m.per_image.columns]
        out += [("h3", m.name), ("table", summarize(m.per_image, cols), ""),
                ("details", f"all {len(m.per_image)} cases of {m.name}", [("table", m.per_image[cols], "case")])]
    return out


def _class_blocks(models: list[ModelResult], fig_dir: Path, metric: str) -> list:
    per_class = {m.name: m.per_class for m in models if m.per_class is not None and m.per_class["class"].nunique() > 1}
    if not per_class:
        return []
    names = list(dict.fromkeys(next(iter(per_class.values()))["class"]))
    table = pd.DataFrame({name: pc.groupby("class")[metric].mean().reindex(names) for name, pc in per_class.items()})
    bars = plot_class_bars({c: table[c].to_numpy() for c in table.columns}, names, fig_dir / "per_class.png",
                           metric.capitalize())
    regions = ([("p", "The classes are the BraTS evaluation regions (whole tumour, tumour core, enhancing tumour).")]
               if set(names) == set(BRATS_REGIONS) else [])
    return [("h2", "Per class / region (mean over cases)"), *regions,
            ("table", table, "class"), ("img", bars, f"{metric.capitalize()} per class")]


def _figure_blocks(models: list[ModelResult], fig_dir: Path) -> list:
    out: list[tuple] = []
    curves = [(m.name, c) for m in models for c in m.curves]
    if curves:
        out.append(("h2", "Training curves"))
        for name, csv in curves:
            rows = pd.read_csv(csv).to_dict("records")
            rows = [{k: v for k, v in r.items() if pd.notna(v)} for r in rows if "epoch" in r]
            if rows:
                path = plot_loss_curve(rows, fig_dir / f"loss_{name.replace('/', '_')}.png")
                out.append(("img", path, f"{name}: loss and validation Dice per epoch"))
    shown = [(m.name, p) for m in models for p in m.overlays]
    if shown:
        out += [("h2", "Overlays (best, median and worst case of each model, as many as it has)"),
                ("p", ("image | ground truth | prediction | errors (white: true positive, red: false positive, "
                      "blue: false negative); 3D cases show axial, coronal and sagittal slices through the tumour."))]
        out += [("img", p, f"{name}: {p.stem}") for name, p in shown]
    return out
