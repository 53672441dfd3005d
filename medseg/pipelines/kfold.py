"""k-fold cross-validation: train every fold, collect out-of-fold (OOF) predictions, score the fold
ensemble on the test split; an interrupted run resumes at the first unfinished fold.

Layout of the k-fold folder (deterministic, so rerunning the same command finds it)::

    <kfold dir>/fold_<k>/            a normal run folder (checkpoints, metrics.csv, report.md, results.json)
    <kfold dir>/fold_<k>/oof/        the fold's best checkpoint on its held-out fold: per_image.csv, and
                                     cases/<case>.npz (logits, label, roi: what medseg-select reads)
    <kfold dir>/oof_per_image.csv    all folds' OOF rows (every training-pool case exactly once)
    <kfold dir>/folds.csv            per fold: OOF Dice and test Dice
    <kfold dir>/ensemble/            leaderboard of each fold and the fold ensemble on the test split

A fold is finished when its ``results.json`` exists (the train pipeline writes it atomically last);
finished folds are never retrained. An unfinished fold continues from its ``last.ckpt``. Resuming
with a different configuration (another learning rate, model, data root...) is refused with the
list of differences, so one k-fold folder never mixes two experiments.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from medseg.errors import ConfigError, DataError
from medseg.evaluation import PREDICTIONS
from medseg.metrics import metrics_from_config
from medseg.pipelines.build import build_datamodule
from medseg.pipelines.eval import evaluate_split, load_model, run_source
from medseg.pipelines.train import train
from medseg.report.kfold import write_kfold_report
from medseg.select.oof import oof_writer
from medseg.utils.io import save_with, write_text_atomic

log = logging.getLogger(__name__)

#: keys of conf/kfold.yaml that are not part of a fold's training config
KFOLD_KEYS = ("folds", "save_oof_probs", "oof_probs_max_size", "ensemble_method")


def fold_config(cfg: DictConfig, fold: int, fold_dir: Path) -> DictConfig:
    """The training config of one fold: ``data.fold=fold``, output in ``fold_dir``, resumable; resolved,
    so the saved copy reloads anywhere (``medseg-eval``, ``medseg-ensemble``)."""
    c = copy.deepcopy(cfg)
    with open_dict(c):
        for k in (*KFOLD_KEYS, "hydra"):
            c.pop(k, None)
        c.data.fold = fold
        c.data.n_folds = int(cfg.folds)
        c.paths.output_dir = str(fold_dir)
        c.task_name = f"{cfg.task_name}_fold{fold}"
        c.resume = True
    OmegaConf.resolve(c)
    return c


def config_changes(saved: DictConfig, new: DictConfig, ignore: tuple[str, ...] = ("resume",)) -> list[str]:
    """``key: old -> new`` for every leaf that differs between two resolved configs."""
    def flat(node, prefix=""):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out
        return {prefix[:-1]: node}

    a = flat(OmegaConf.to_container(saved, resolve=True))
    b = flat(OmegaConf.to_container(new, resolve=True))
    keys = sorted(k for k in set(a) | set(b) if k.split(".")[0] not in ignore and a.get(k) != b.get(k))
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in keys]


def check_same_experiment(fold_dir: Path, fcfg: DictConfig) -> None:
    """Refuse to resume a fold trained with another configuration (never mix experiments silently)."""
    saved = fold_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        return
    saved_cfg = OmegaConf.load(saved)
    assert isinstance(saved_cfg, DictConfig)  # Hydra writes a mapping
    changes = config_changes(saved_cfg, fcfg)
    if changes:
        shown = "; ".join(changes[:5]) + (f"; ... ({len(changes)} in all)" if len(changes) > 5 else "")
        raise DataError(f"{saved}: this fold was started with a different configuration ({shown}). "
                        "Rerun with the original settings to resume, or choose another hydra.run.dir / task_name.")


def run_fold(cfg: DictConfig, fold: int, fold_dir: Path) -> None:
    """Train fold ``fold`` unless finished, then score its best checkpoint on the held-out fold (OOF)."""
    fcfg = fold_config(cfg, fold, fold_dir)
    check_same_experiment(fold_dir, fcfg)
    if (fold_dir / "results.json").is_file():
        log.info("fold %d: finished earlier (%s), not retrained", fold, fold_dir / "results.json")
    else:
        log.info("fold %d/%d: training in %s", fold + 1, cfg.folds, fold_dir)
        write_text_atomic(fold_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(fcfg))
        train(fcfg, fold_dir)
    if not (fold_dir / "oof" / "per_image.csv").is_file():
        score_oof(cfg, fcfg, fold_dir)


def score_oof(cfg: DictConfig, fcfg: DictConfig, fold_dir: Path) -> None:
    """Score a fold's best checkpoint on its held-out fold into ``fold_dir/oof`` (and its OOF records)."""
    dm = build_datamodule(fcfg)
    module, ckpt = load_model(fcfg, dm, fold_dir, "best")
    oof = fold_dir / "oof"
    evaluate_split(module, dm, oof, split="val", overlays=False,
                   title=f"{fcfg.task_name}: out-of-fold report ({ckpt.name})",
                   metrics=metrics_from_config(cfg),
                   predictions_dir=oof / PREDICTIONS if cfg.get("save_predictions", True) else None,
                   on_case=oof_writer(oof / "cases", module.task, cfg.get("oof_probs_max_size"))
                   if cfg.get("save_oof_probs", True) else None,
                   source=run_source(fold_dir, ckpt))


def check_fold_file(cfg: DictConfig) -> None:
    """``data.splits`` given as a list of folds (nnU-Net's ``splits_final.json``): ``folds`` must match
    it, so each medseg fold is exactly that file's fold (checked before any training)."""
    spec = cfg.data.get("splits")
    if spec is None:
        return
    from medseg.data.splits import load_split_spec

    folds, source = load_split_spec(spec)
    if isinstance(folds, list) and len(folds) != int(cfg.folds):
        raise ConfigError(f"{source} holds {len(folds)} folds but folds={cfg.folds}: run medseg-kfold folds={len(folds)}")


def run_kfold(cfg: DictConfig, kfold_dir: str | Path) -> pd.DataFrame:
    """Train and score all ``cfg.folds`` folds in ``kfold_dir``. Returns the per-fold table.

    The folds are medseg's grouped k-fold of the training pool, or the folds of a ``data.splits``
    list of folds (nnU-Net's ``splits_final.json``; an nnU-Net dataset's own file is found by its
    reader), fold ``k`` training on that file's ``train`` list and validating on its ``val`` list."""
    from medseg.pipelines.ensemble import evaluate_ensemble

    kfold_dir = Path(kfold_dir)
    n = int(cfg.folds)
    if n < 2:
        raise ConfigError(f"folds={n}: k-fold needs at least 2 folds, got {n} (use medseg-train for a single run)")
    check_fold_file(cfg)
    for k in range(n):
        run_fold(cfg, k, kfold_dir / f"fold_{k}")
    oof_df, folds = collect_folds(kfold_dir, n)
    save_with(kfold_dir / "oof_per_image.csv", lambda p: oof_df.to_csv(p, float_format="%.6f"))
    board = evaluate_ensemble([kfold_dir], kfold_dir / "ensemble", split="test",
                              method=cfg.get("ensemble_method", "mean"),
                              metrics=metrics_from_config(cfg))
    text = write_kfold_report(kfold_dir, cfg.task_name, oof_df, folds, board)
    # the summaries last, once everything they sum up exists (a failure above leaves none)
    save_with(kfold_dir / "folds.csv", lambda p: folds.to_csv(p, float_format="%.6f"))
    write_text_atomic(kfold_dir / "report.md", text)
    return folds


def collect_folds(kfold_dir: Path, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All folds' out-of-fold rows (with a ``fold`` column) and the per-fold table (OOF and test Dice)."""
    oof, fold_rows = [], []
    for k in range(n):
        fd = kfold_dir / f"fold_{k}"
        rows = pd.read_csv(fd / "oof" / "per_image.csv", index_col=0).assign(fold=k)
        oof.append(rows)
        results = json.loads((fd / "results.json").read_text())
        fold_rows.append({"fold": k, "n_val": len(rows), "oof_dice": float(rows["dice"].mean()),
                          "test_dice": results.get("test/dice", float("nan"))})
    return pd.concat(oof), pd.DataFrame(fold_rows).set_index("fold")
