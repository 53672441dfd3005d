"""Evaluate the checkpoint of an earlier run on one of its splits."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from medseg.errors import CheckpointError, DataError
from medseg.metrics import metrics_from_config
from medseg.module import SegmentationModule
from medseg.pipelines.build import build_datamodule, build_module, load_weights
from medseg.pipelines.evaluate import PREDICTIONS, evaluate_split, summary_dict
from medseg.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def resolve_checkpoint(run_dir: Path, ckpt: str) -> Path:
    """``best`` (the run's monitored best), ``last``, or a path."""
    folder = run_dir / "checkpoints"
    if ckpt == "last":
        path = folder / "last.ckpt"
    elif ckpt == "best":
        cands = sorted(p for p in folder.glob("*.ckpt") if p.name != "last.ckpt") if folder.is_dir() else []
        if not cands:
            raise CheckpointError(f"{folder}: no best checkpoint found (did the run finish an epoch?)")
        path = cands[-1] if len(cands) == 1 else max(cands, key=lambda p: p.stat().st_mtime)
    else:
        path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def load_run_config(run_dir: str | Path, overrides=None, config: str | Path | None = None) -> DictConfig:
    """The saved config of a run folder (``.hydra/config.yaml``), or the file ``config`` (a checkpoint
    plus its config from elsewhere), with ``overrides`` merged in."""
    run_dir = Path(run_dir).expanduser()
    saved = Path(config).expanduser() if config else run_dir / ".hydra" / "config.yaml"
    if config and not saved.is_file():
        raise DataError(f"{saved}: config file not found")
    if not saved.is_file():
        raise DataError(f"{run_dir}: not a medseg run folder (no .hydra/config.yaml)")
    run_cfg = OmegaConf.load(saved)
    if overrides:
        run_cfg = OmegaConf.merge(run_cfg, overrides)
    return run_cfg


def load_model(run_cfg: DictConfig, dm, run_dir: str | Path, ckpt: str = "best") -> tuple[SegmentationModule, Path]:
    """The run's network with the weights of checkpoint ``ckpt`` (``best``, ``last`` or a path)."""
    module = build_module(run_cfg, dm)
    path = resolve_checkpoint(Path(run_dir).expanduser(), str(ckpt))
    load_weights(module, path)
    module.eval()
    return module, path


def evaluate_run(cfg: DictConfig, out_dir: str | Path) -> Path:
    run_dir = Path(cfg.run_dir).expanduser()
    run_cfg = load_run_config(run_dir, cfg.get("overrides"), cfg.get("config"))
    dm = build_datamodule(run_cfg)
    module, ckpt = load_model(run_cfg, dm, run_dir, str(cfg.ckpt))
    out = Path(out_dir)
    per_image = evaluate_split(
        module, dm, out, split=cfg.split, baseline=dm.baseline,
        title=f"{run_cfg.task_name}: {cfg.split} report ({ckpt.name})",
        threshold=cfg.get("threshold"), tta=cfg.get("tta") or False,
        metrics=metrics_from_config(cfg), nsd_tolerance=cfg.get("nsd_tolerance", 1.0),
        predictions_dir=out / PREDICTIONS if cfg.get("save_predictions", True) else None,
    )
    write_json_atomic(out / "results.json", {**summary_dict(per_image), "checkpoint": str(ckpt)})
    return out
